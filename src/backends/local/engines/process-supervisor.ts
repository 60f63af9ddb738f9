import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import { abortable } from "../../../core/abortable.js";
import { ServiceError, serviceUnavailable } from "../../../core/errors.js";
import type { EngineState } from "../../../core/generation.js";
import { freeLoopbackPort } from "./free-port.js";
import {
  killGroup,
  ownCommandLine,
  pidDir,
  removePidFile,
  sweepStalePidFiles,
  writePidFile,
} from "./pid-files.js";
import { spawnWithWatchdog } from "./spawn-with-watchdog.js";

/**
 * Runs one engine process (llama-server, or a node-llama-cpp runner) for one model: spawns it on
 * a free loopback port with a fresh secret, waits until it is ready, restarts it with backoff
 * when it dies, stops it when idle and on close, and makes sure it never outlives Switchboard
 * (a parent-death watchdog, plus a pid file sweep at start). Engines talk to the process through
 * leases: a lease keeps the process from idling out, and its signal aborts when the process goes
 * away, so no request waits on a dead process.
 */

export type EngineProcessState = EngineState;

/** One running process, as a lease hands it out. */
export interface EngineProcess {
  readonly pid: number;
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly baseUrl: string;
  /** The secret the process was started with (sent as a bearer token). */
  readonly apiKey: string;
  /** 1 for the first process, +1 for every restart: caches tied to a process are stale when it changes. */
  readonly generation: number;
  /** Aborted when this process exits or is being stopped. */
  readonly signal: AbortSignal;
  readonly child: ChildProcess;
}

export interface ProcessLease {
  readonly process: EngineProcess;
  release(): void;
}

export interface EngineProcessSpec {
  /** Short engine name for logs, metrics and errors: "llama-server", "runner". */
  kind: string;
  /** The model id, for logs and pid records. */
  model: string;
  command: string;
  /** Arguments of one start. */
  args(endpoint: { port: number }): string[];
  /** Environment of one start (the secret usually goes here: the command line is world-readable). */
  env(endpoint: { port: number; apiKey: string }): NodeJS.ProcessEnv;
  /** A Node IPC channel on fd 3 (for a runner). */
  ipc?: boolean;
  /** Resolves once the process can serve; rejects (or is aborted) when it cannot. */
  waitReady(process: EngineProcess, signal: AbortSignal): Promise<void>;
}

export interface SupervisorOptions {
  logger: Logger;
  /** Where pid records live (`<data_dir>`); stale ones are swept before the first start. */
  dataDir: string;
  /** Stop the process after this long without a lease; undefined = never. */
  idleTtlMs?: number;
  /** A start that is not ready after this long fails. */
  startTimeoutMs?: number;
  /** After SIGTERM, SIGKILL follows after this long. */
  stopGraceMs?: number;
  /** First restart delay; doubles per consecutive failure up to maxBackoffMs (engines.restart_backoff_ms). */
  backoffMs: number;
  /** engines.restart_backoff_max_ms */
  maxBackoffMs: number;
  /** A process up this long resets the backoff. */
  stableAfterMs?: number;
  /** A request waits for a restart due within this long; a later one is refused at once (503). */
  waitForRestartMs?: number;
}

export interface SupervisorStatus {
  kind: string;
  state: EngineProcessState;
  pid: number | undefined;
  port: number | undefined;
  restarts: number;
  /** Processes started in total (first start, restarts and starts after idling). */
  starts: number;
  leases: number;
  lastExit: { code: number | null; signal: string | null; at: string } | undefined;
  lastError: string | undefined;
}

/** What an engine passes on to its supervisor: the restart backoff from the config, and overrides (tests). */
export type SupervisorTimings = Pick<SupervisorOptions, "backoffMs" | "maxBackoffMs"> &
  Partial<Pick<SupervisorOptions, "startTimeoutMs" | "stopGraceMs">>;

const LOG_TAIL_LINES = 20;

export class ProcessSupervisor {
  private state: EngineProcessState = "stopped";
  private current: RunningProcess | undefined;
  private starting: Promise<RunningProcess> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDueAt = 0;
  private restartWaiters: { resolve(): void; reject(err: unknown): void }[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private leases = 0;
  private restarts = 0;
  private starts = 0;
  private generation = 0;
  private consecutiveFailures = 0;
  private lastExit: SupervisorStatus["lastExit"];
  private lastError: string | undefined;
  private readonly logTail: string[] = [];
  /** Every process spawned and not yet exited. */
  private readonly alive = new Set<RunningProcess>();
  private readonly readyListeners = new Set<(process: EngineProcess) => void>();
  /** The options in effect (defaults filled in). */
  readonly opts: Readonly<Required<Omit<SupervisorOptions, "idleTtlMs">> & { idleTtlMs?: number }>;

  constructor(
    private readonly spec: EngineProcessSpec,
    options: SupervisorOptions,
  ) {
    this.opts = {
      startTimeoutMs: 120_000,
      stopGraceMs: 5_000,
      stableAfterMs: 30_000,
      waitForRestartMs: 5_000,
      ...options,
    };
  }

  status(): SupervisorStatus {
    return {
      kind: this.spec.kind,
      state: this.state,
      pid: this.current?.child.pid,
      port: this.current?.port,
      restarts: this.restarts,
      starts: this.starts,
      leases: this.leases,
      lastExit: this.lastExit,
      lastError: this.lastError,
    };
  }

  /** Called with every process that becomes ready (the first and every restart). */
  onReady(listener: (process: EngineProcess) => void): () => void {
    this.readyListeners.add(listener);
    return () => this.readyListeners.delete(listener);
  }

  /** Starts the process if needed and resolves when it is ready (503 ServiceError when it cannot start). */
  async start(signal?: AbortSignal): Promise<EngineProcess> {
    const lease = await this.acquire(signal ?? new AbortController().signal);
    lease.release();
    return lease.process;
  }

  /**
   * A lease on a ready process, starting it on demand. Throws a 503 ServiceError when the process
   * cannot be started (or is crash-looping), and the signal's reason when the caller gives up.
   */
  async acquire(signal: AbortSignal): Promise<ProcessLease> {
    this.leases++;
    this.clearIdleTimer();
    try {
      const running = await abortable(this.ensureRunning(), signal);
      let released = false;
      return {
        process: running,
        release: () => {
          if (released) return;
          released = true;
          this.releaseOne();
        },
      };
    } catch (err) {
      this.releaseOne();
      throw err;
    }
  }

  /** Stops the process for good (waiting until it has exited); later acquires fail. */
  async close(): Promise<void> {
    if (this.state !== "closed") {
      this.state = "closed";
      this.clearIdleTimer();
      this.cancelRestart(
        serviceUnavailable(`The ${this.spec.kind} engine of model '${this.spec.model}' is shut down.`),
      );
      this.current = undefined;
    }
    // A start in progress finishes (and is stopped) before close resolves.
    await this.starting?.catch(() => undefined);
    await Promise.all([...this.alive].map((running) => this.stopProcess(running)));
  }

  private releaseOne(): void {
    this.leases--;
    if (this.leases === 0) this.armIdleTimer();
  }

  private async ensureRunning(): Promise<RunningProcess> {
    for (;;) {
      switch (this.state) {
        case "closed":
          throw serviceUnavailable(
            `The ${this.spec.kind} engine of model '${this.spec.model}' is shut down.`,
          );
        case "ready":
          if (this.current) return this.current;
          break;
        case "starting":
          if (this.starting) return this.starting;
          break;
        case "restarting":
        case "failed": {
          const wait = this.restartDueAt - Date.now();
          if (!this.restartTimer || wait > this.opts.waitForRestartMs) {
            throw this.unavailable(Math.max(1, Math.ceil(wait / 1000)));
          }
          await new Promise<void>((resolve, reject) => this.restartWaiters.push({ resolve, reject }));
          continue;
        }
        case "stopped":
          break;
      }
      return this.launch();
    }
  }

  private unavailable(retryAfterSeconds: number) {
    return new ServiceError(
      "unavailable",
      `The ${this.spec.kind} engine of model '${this.spec.model}' is restarting after a failure; retry shortly.`,
      {
        code: "service_unavailable",
        cause: this.lastError,
        hints: { "retry-after": String(retryAfterSeconds) },
      },
    );
  }

  /** Starts a process; the returned promise is shared by everyone waiting for it. */
  private launch(): Promise<RunningProcess> {
    this.state = "starting";
    const attempt = this.spawnAndWait().then(
      (running) => {
        if (this.starting === attempt) this.starting = undefined;
        if (this.state === "closed") {
          void this.stopProcess(running);
          throw serviceUnavailable(
            `The ${this.spec.kind} engine of model '${this.spec.model}' is shut down.`,
          );
        }
        this.current = running;
        this.state = "ready";
        this.lastError = undefined;
        for (const listener of this.readyListeners) listener(running);
        if (this.leases === 0) this.armIdleTimer();
        return running;
      },
      (err: unknown) => {
        if (this.starting === attempt) this.starting = undefined;
        this.lastError = (err as Error).message;
        this.opts.logger.warn({ err, engine: this.spec.kind }, "engine process failed to start");
        if (this.state !== "closed") this.scheduleRestart("failed");
        throw serviceUnavailable(
          `The ${this.spec.kind} engine of model '${this.spec.model}' could not be started.`,
          err,
        );
      },
    );
    this.starting = attempt;
    return attempt;
  }

  private async spawnAndWait(): Promise<RunningProcess> {
    const { logger, dataDir } = this.opts;
    await sweepStalePidFiles(pidDir(dataDir), logger);
    const port = await freeLoopbackPort();
    const apiKey = randomBytes(24).toString("base64url");
    const args = this.spec.args({ port });
    const child = spawnWithWatchdog(this.spec.command, args, {
      env: this.spec.env({ port, apiKey }),
      ipc: this.spec.ipc,
      graceSeconds: Math.ceil(this.opts.stopGraceMs / 1000),
    });
    const controller = new AbortController();
    setMaxListeners(1000, controller.signal);
    this.generation++;
    this.starts++;
    const running: RunningProcess = {
      pid: child.pid ?? -1,
      port,
      baseUrl: `http://127.0.0.1:${port}`,
      apiKey,
      generation: this.generation,
      signal: controller.signal,
      child,
      controller,
      startedAt: Date.now(),
      exited: new Promise((resolve) => {
        child.once("exit", (code, sig) => resolve({ code, signal: sig }));
      }),
      pidFile: undefined,
      stopping: false,
    };
    child.once("error", (err) => {
      this.lastError = err.message;
      controller.abort(err);
    });
    this.alive.add(running);
    this.pipeLogs(child);
    if (child.pid !== undefined) {
      try {
        running.pidFile = writePidFile(pidDir(dataDir), {
          pid: child.pid,
          owner: process.pid,
          ownerCommand: ownCommandLine(),
          command: [this.spec.command, ...args].join(" "),
          model: this.spec.model,
          startedAt: new Date().toISOString(),
        });
      } catch (err) {
        logger.warn({ err }, "could not write the engine's pid file");
      }
    }
    void running.exited.then((exit) => this.onExit(running, exit));
    logger.debug({ engine: this.spec.kind, pid: child.pid, port }, "engine process started");

    const timeout = AbortSignal.timeout(this.opts.startTimeoutMs);
    const giveUp = AbortSignal.any([controller.signal, timeout]);
    try {
      await this.spec.waitReady(running, giveUp);
      if (controller.signal.aborted) throw new Error("exited during start-up");
    } catch (err) {
      const reason = controller.signal.aborted
        ? `exited during start-up${this.lastExit ? ` (${describeExit(this.lastExit)})` : ""}`
        : timeout.aborted
          ? `not ready after ${this.opts.startTimeoutMs} ms`
          : (err as Error).message;
      await this.stopProcess(running);
      const tail = this.logTail.slice(-5).join(" | ");
      throw new Error(`${this.spec.kind} ${reason}${tail ? `; its last output: ${tail}` : ""}`, {
        cause: err,
      });
    }
    logger.info(
      { engine: this.spec.kind, pid: child.pid, port, ms: Date.now() - running.startedAt },
      "engine process ready",
    );
    return running;
  }

  private onExit(
    running: RunningProcess,
    exit: { code: number | null; signal: NodeJS.Signals | null },
  ): void {
    this.alive.delete(running);
    this.lastExit = { code: exit.code, signal: exit.signal, at: new Date().toISOString() };
    running.controller.abort(new Error(`${this.spec.kind} process exited (${describeExit(this.lastExit)})`));
    // The watchdog (same process group) is not needed any more.
    if (running.child.pid !== undefined) killGroup(running.child.pid, "SIGKILL");
    running.child.stdin?.destroy();
    removePidFile(running.pidFile);
    if (this.current !== running) return;
    this.current = undefined;
    if (running.stopping || this.state === "closed") return;
    const upMs = Date.now() - running.startedAt;
    if (upMs >= this.opts.stableAfterMs) this.consecutiveFailures = 0;
    const tail = this.logTail.slice(-5).join(" | ");
    this.lastError = `${this.spec.kind} exited unexpectedly (${describeExit(this.lastExit)})${tail ? `; its last output: ${tail}` : ""}`;
    this.opts.logger.warn(
      { engine: this.spec.kind, pid: running.pid, ...this.lastExit, upMs },
      "engine process died; restarting it",
    );
    this.scheduleRestart("restarting");
  }

  /** `restarting` after a crash of a process that was serving; `failed` after a start that did not work. */
  private scheduleRestart(state: "restarting" | "failed"): void {
    if (this.state === "closed") return;
    this.consecutiveFailures++;
    this.state = state;
    const delay = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (this.consecutiveFailures - 1));
    this.restartDueAt = Date.now() + delay;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      const waiters = this.restartWaiters.splice(0);
      const attempt = this.launch();
      attempt.catch(() => {});
      for (const waiter of waiters) waiter.resolve();
    }, delay);
    this.restartTimer.unref();
    // Waiters that were promised a quick restart re-check the state (and may now be refused).
    for (const waiter of this.restartWaiters.splice(0)) waiter.resolve();
  }

  private cancelRestart(err: unknown): void {
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    for (const waiter of this.restartWaiters.splice(0)) waiter.reject(err);
  }

  private armIdleTimer(): void {
    const ttl = this.opts.idleTtlMs;
    if (ttl === undefined || this.state !== "ready") return;
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      const running = this.current;
      if (this.leases > 0 || this.state !== "ready" || !running) return;
      this.opts.logger.info(
        { engine: this.spec.kind, pid: running.pid, idleMs: ttl },
        "stopping idle engine process",
      );
      this.state = "stopped";
      this.current = undefined;
      this.consecutiveFailures = 0;
      void this.stopProcess(running);
    }, ttl);
    this.idleTimer.unref();
  }

  private clearIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves once the process has exited. */
  private async stopProcess(running: RunningProcess): Promise<void> {
    running.stopping = true;
    running.controller.abort(new Error(`${this.spec.kind} process is stopping`));
    const pid = running.child.pid;
    if (pid === undefined || !this.alive.has(running)) {
      removePidFile(running.pidFile);
      return;
    }
    killGroup(pid, "SIGTERM");
    const kill = setTimeout(() => killGroup(pid, "SIGKILL"), this.opts.stopGraceMs);
    await running.exited;
    clearTimeout(kill);
    killGroup(pid, "SIGKILL");
    removePidFile(running.pidFile);
  }

  private pipeLogs(child: ChildProcess): void {
    const log = this.opts.logger;
    const engine = this.spec.kind;
    const pid = child.pid;
    const onLine = (line: string) => {
      const text = line.trimEnd();
      if (!text) return;
      this.logTail.push(text);
      if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
      if (/\b(error|failed|fatal|abort|exception)\b/i.test(text)) log.warn({ engine, pid }, text);
      else log.debug({ engine, pid }, text);
    };
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      let buffered = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf("\n");
        while (newline >= 0) {
          onLine(buffered.slice(0, newline));
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf("\n");
        }
        // A process that never ends a line must not grow this without bound.
        if (buffered.length > 64 * 1024) {
          onLine(buffered);
          buffered = "";
        }
      });
      stream.on("end", () => {
        if (buffered) onLine(buffered);
      });
    }
  }
}

interface RunningProcess extends EngineProcess {
  controller: AbortController;
  startedAt: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  pidFile: string | undefined;
  stopping: boolean;
}

function describeExit(exit: { code: number | null; signal: string | null }): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}
