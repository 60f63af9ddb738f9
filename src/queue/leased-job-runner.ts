import { setTimeout as delay } from "node:timers/promises";
import { randomId } from "../core/ids.js";

/**
 * Durable jobs kept in the database and worked under leases, by every instance: a job is taken
 * with a lease (owner + until), the lease is renewed while the job runs, and given back on
 * shutdown. A worker that dies simply stops renewing; once its leases lapse another takes the
 * jobs. Whether a job's result counts is the store's business (a conditional write that checks
 * the lease, or that the job is still unanswered), so a job run twice is never recorded twice.
 * Batch lines and vector store file ingestion both run on it.
 */
export interface LeasedJobStore<J> {
  /** Leases up to `max` jobs whose lease is free or lapsed. */
  claim(owner: string, now: number, leaseMs: number, max: number): Promise<J[]>;
  /** Extends the leases `owner` still holds. */
  renew(owner: string, jobs: readonly J[], until: number): Promise<void>;
  /** Gives leases back; `retryAt` keeps the job from being taken before then. */
  release(owner: string, jobs: readonly J[], retryAt: number | null): Promise<void>;
}

export interface LeasedJobRunnerOptions<J> {
  store: LeasedJobStore<J>;
  /** A job's identity (two claims of one job have the same key). */
  keyOf(job: J): string;
  /** Works one job to its end; the signal aborts when the runner stops or the job should end. */
  run(job: J, signal: AbortSignal): Promise<void>;
  concurrency: number;
  leaseMs: number;
  pollIntervalMs: number;
  now: () => number;
  logger: { warn(obj: object, msg: string): void };
  /** Whether to claim more now (e.g. not while interactive requests wait); default always. */
  mayClaim?: () => boolean;
  /** Called after each renewal with the running jobs, to abort those that should end. */
  afterRenew?: (running: readonly { job: J; abort(reason: Error): void }[]) => Promise<void>;
  /**
   * Work of the runner's user beside the jobs, done by the same loop before each claim (a batch's
   * validation and finalization); true when it found some, so the loop looks again at once.
   */
  beforeClaim?: () => Promise<boolean>;
  /** Called on every heartbeat, jobs running or not, before their renewal (leases held beside the jobs). */
  onHeartbeat?: () => Promise<void>;
  /** What stop() waits for once the jobs have ended, while the heartbeat still beats (work begun in beforeClaim). */
  drain?: () => Promise<void>;
  /** A name for log lines. */
  name: string;
}

interface Running<J> {
  job: J;
  controller: AbortController;
  done: Promise<void>;
}

export class LeasedJobRunner<J> {
  /** This runner's name on the leases it holds. */
  readonly owner = `w_${randomId(16)}`;
  private readonly running = new Map<string, Running<J>>();
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private wakeUp: (() => void) | undefined;

  constructor(private readonly options: LeasedJobRunnerOptions<J>) {}

  start(): void {
    if (this.loopDone || this.options.concurrency === 0) return;
    this.loopDone = this.loop();
    this.heartbeat = setInterval(
      () => void this.beat(),
      Math.max(100, Math.min(this.options.leaseMs / 3, 5_000)),
    );
    this.heartbeat.unref();
  }

  /** Looks for work now instead of at the next poll (new jobs were just stored). */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops claiming, lets running jobs finish within `graceMs`, then aborts the rest and gives their leases back. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wakeUp?.();
    await this.loopDone;
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) await delay(20);
    for (const run of this.running.values()) run.controller.abort(new Error(`${this.options.name} stopping`));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await this.options.drain?.();
    if (this.heartbeat) clearInterval(this.heartbeat);
    // Stopped for good unless started again.
    this.loopDone = undefined;
    this.stopping = false;
  }

  /** Jobs running now. */
  get busy(): number {
    return this.running.size;
  }

  /** Whether stop() was called and has not finished. */
  get isStopping(): boolean {
    return this.stopping;
  }

  private async loop(): Promise<void> {
    const { store, concurrency, leaseMs, pollIntervalMs } = this.options;
    while (!this.stopping) {
      let worked = false;
      try {
        worked = (await this.options.beforeClaim?.()) ?? false;
        const free = concurrency - this.running.size;
        if (free > 0 && !this.stopping && (this.options.mayClaim?.() ?? true)) {
          const claimed = await store.claim(this.owner, this.options.now(), leaseMs, free);
          for (const job of claimed) this.startJob(job);
          worked ||= claimed.length > 0;
        }
      } catch (err) {
        this.options.logger.warn({ err }, `${this.options.name}: a round failed; retrying`);
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, worked ? 10 : pollIntervalMs);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  private startJob(job: J): void {
    const key = this.options.keyOf(job);
    if (this.running.has(key)) return;
    const controller = new AbortController();
    const run: Running<J> = { job, controller, done: Promise.resolve() };
    this.running.set(key, run);
    run.done = this.options
      .run(job, controller.signal)
      .catch(async (err: unknown) => {
        this.options.logger.warn({ err }, `${this.options.name}: a job failed; released`);
        await this.options.store.release(this.owner, [job], null).catch(() => {});
      })
      .finally(() => {
        this.running.delete(key);
        this.wakeUp?.();
      });
  }

  private async beat(): Promise<void> {
    try {
      await this.options.onHeartbeat?.();
      if (this.running.size === 0) return;
      const runs = [...this.running.values()];
      await this.options.store.renew(
        this.owner,
        runs.map((r) => r.job),
        this.options.now() + this.options.leaseMs,
      );
      await this.options.afterRenew?.(
        runs.map((r) => ({ job: r.job, abort: (reason: Error) => r.controller.abort(reason) })),
      );
    } catch (err) {
      this.options.logger.warn({ err }, `${this.options.name}: lease renewal failed`);
    }
  }
}
