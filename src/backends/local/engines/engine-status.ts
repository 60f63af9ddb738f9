import type { EngineReport } from "../../../core/generation.js";
import type { LocalEngine } from "../engine.js";
import type { SupervisorStatus } from "./process-supervisor.js";

/** An engine that runs in a supervised process. */
export interface SupervisedEngine {
  readonly engineName: string;
  processStatus(): SupervisorStatus;
}

function isSupervised(engine: unknown): engine is SupervisedEngine {
  return typeof (engine as SupervisedEngine | undefined)?.processStatus === "function";
}

/** What an engine reports about itself; `loaded` says whether its model is loaded. */
export function engineReportOf(engine: LocalEngine, loaded: boolean): EngineReport {
  if (isSupervised(engine)) {
    const status = engine.processStatus();
    // The last error (paths, the engine's own output) goes to the log, not to clients.
    return { engine: engine.engineName, state: status.state, pid: status.pid, restarts: status.restarts };
  }
  return { engine: "in-process", state: loaded ? "ready" : "stopped", restarts: 0 };
}

/** Whether the engine can take work now (an engine process that crashed and is restarting cannot). */
export function engineServing(report: EngineReport): boolean {
  return report.state !== "restarting" && report.state !== "failed";
}
