import { readFileSync } from "node:fs";
import type { ModelBackend } from "../../../core/generation.js";
import type { EngineProcessState, SupervisorStatus } from "./process-supervisor.js";

/** What /ready and /metrics say about the engine of one model. */
export interface EngineStatusReport {
  /** "in-process", "llama-server" (later "runner"). */
  engine: string;
  /** For an engine process: its supervisor's state; in-process: ready once loaded, else stopped. */
  state: EngineProcessState;
  pid?: number;
  restarts: number;
}

/** An engine that runs in a supervised process. */
export interface SupervisedEngine {
  readonly engineName: string;
  processStatus(): SupervisorStatus;
}

function isSupervised(engine: unknown): engine is SupervisedEngine {
  return typeof (engine as SupervisedEngine | undefined)?.processStatus === "function";
}

/** The engine status of a deployment's backend, or undefined when it is not a local model. */
export function engineStatusOf(backend: ModelBackend): EngineStatusReport | undefined {
  const engine = (backend as { engine?: unknown }).engine;
  if (!engine) return undefined;
  if (isSupervised(engine)) {
    const status = engine.processStatus();
    return {
      engine: engine.engineName,
      state: status.state,
      pid: status.pid,
      restarts: status.restarts,
      // The last error (paths, the engine's own output) goes to the log, not to clients.
    };
  }
  return { engine: "in-process", state: backend.isReady() ? "ready" : "stopped", restarts: 0 };
}

/** Whether the engine can take work now (an engine process that crashed and is restarting cannot). */
export function engineServing(report: EngineStatusReport | undefined): boolean {
  return report === undefined || (report.state !== "restarting" && report.state !== "failed");
}

/** Resident memory of a process in bytes (Linux), or undefined. */
export function residentBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
