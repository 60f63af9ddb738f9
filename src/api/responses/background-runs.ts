import type { ResponseRepository } from "../../storage/repositories/types.js";

/** One event of a background response, as it went out (its sequence number is its index). */
export interface RunEvent {
  name: string;
  json: string;
}

/**
 * A background response running in this instance: its events so far (so a client can stream
 * them from any point, again and again), a way to cancel it, and whether it has ended.
 */
export class BackgroundRun {
  readonly events: RunEvent[] = [];
  readonly abort = new AbortController();
  ended = false;
  private wake: (() => void) | undefined;

  push(event: RunEvent): void {
    this.events.push(event);
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The events after sequence number `after` (-1: all), then each new one until the run ends. */
  async *follow(after: number, signal: AbortSignal): AsyncGenerator<RunEvent> {
    let next = after + 1;
    while (!signal.aborted) {
      while (next < this.events.length) yield this.events[next++] as RunEvent;
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        const previous = this.wake;
        this.wake = () => {
          signal.removeEventListener("abort", onAbort);
          previous?.();
          resolve();
        };
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

export interface BackgroundRunsOptions {
  responses: ResponseRepository;
  now: () => number;
  /** How often running responses are marked as alive. */
  heartbeatMs: number;
  /** A running response not marked for this long belongs to an instance that is gone. */
  staleAfterMs: number;
  /** One instance owns the database (SQLite): at start-up every unfinished response is orphaned. */
  soleInstance: boolean;
  /** Marks an orphaned response failed (the route knows its JSON). */
  failOrphan(responseJson: string): string;
  onError(err: unknown): void;
}

/** How long a finished run's events stay available for streaming again. */
const KEEP_FINISHED_MS = 5 * 60_000;

/**
 * The background responses this instance runs, kept alive in the database by a heartbeat; those
 * whose instance died (kill -9, a crash, a lost machine) are found by their stale heartbeat and
 * marked failed, so none stays in_progress for ever.
 */
export class BackgroundRuns {
  private readonly runs = new Map<string, BackgroundRun>();
  private readonly timer: NodeJS.Timeout;
  /** The start-up sweep: orphans are marked failed before the first request is served. */
  readonly swept: Promise<void>;

  constructor(private readonly options: BackgroundRunsOptions) {
    this.timer = setInterval(() => void this.tick(), options.heartbeatMs);
    this.timer.unref();
    this.swept = this.sweep(options.soleInstance ? options.now() + 1 : options.now() - options.staleAfterMs);
  }

  start(id: string): BackgroundRun {
    const run = new BackgroundRun();
    this.runs.set(id, run);
    return run;
  }

  get(id: string): BackgroundRun | undefined {
    return this.runs.get(id);
  }

  /** Keeps a finished run's events a while for late readers, then lets it go. */
  finished(id: string): void {
    this.runs.get(id)?.end();
    setTimeout(() => this.runs.delete(id), KEEP_FINISHED_MS).unref();
  }

  close(): void {
    clearInterval(this.timer);
    for (const run of this.runs.values()) run.abort.abort();
  }

  private async tick(): Promise<void> {
    try {
      const running = [...this.runs.entries()].filter(([, run]) => !run.ended).map(([id]) => id);
      await this.options.responses.heartbeat(running, this.options.now());
      await this.sweep(this.options.now() - this.options.staleAfterMs);
    } catch (err) {
      this.options.onError(err);
    }
  }

  private async sweep(before: number): Promise<void> {
    try {
      for (const orphan of await this.options.responses.stale(before)) {
        if (this.runs.has(orphan.id)) continue;
        await this.options.responses.finishUnfinished(
          orphan.id,
          "failed",
          this.options.failOrphan(orphan.responseJson),
        );
      }
    } catch (err) {
      this.options.onError(err);
    }
  }
}
