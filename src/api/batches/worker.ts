import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import type { ServiceError } from "../../core/errors.js";
import { objectIds, randomId } from "../../core/ids.js";
import { errorBody, toServiceError } from "../../http/errors.js";
import type { BatchRepository, ClaimedLine, StoredBatch } from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import { writeBatchOutput } from "./batch-output.js";
import { validateBatch } from "./batch-validation.js";
import { encodeResultLine } from "./encode.js";
import { callerOf, type LineContext, runLine } from "./line-runner.js";
import type { BatchEndpoint } from "./schema.js";

export interface BatchWorkerOptions {
  batches: BatchRepository;
  files: FileService;
  lines: LineContext;
  logger: Pick<Logger, "warn" | "info">;
  concurrency: number;
  leaseMs: number;
  pollIntervalMs: number;
  maxAttempts: number;
}

interface Running {
  line: ClaimedLine;
  controller: AbortController;
  done: Promise<void>;
}

/** A deferred line waits this long when the refusal named no time. */
const DEFAULT_DEFER_MS = 1_000;
/** …and never longer than this at once (a limit's window, a deployment's minute). */
const MAX_DEFER_MS = 60_000;

const key = (line: { batchId: string; lineNo: number }) => `${line.batchId}#${line.lineNo}`;

/**
 * Runs batches in every instance: validates new ones, runs their lines claimed from the database
 * under leases, and writes their output. A line counts as answered only when its result row is
 * written (once: the write is conditional), so a worker that dies loses nothing — its leases lapse
 * and another worker runs those lines again — and nothing is answered twice.
 *
 * Lines go through the generation service like online requests, at batch priority: a local model
 * serves waiting interactive requests first and keeps slots free for them (SlotScheduler), and the
 * router lets batch lines fill only a share of a deployment's rate caps. A line refused for want of
 * capacity (a rate limit, a full queue, no deployment with room) is deferred, not failed: it goes
 * back unanswered, its attempt uncounted, and this worker claims nothing more until the wait the
 * refusal asked for has passed.
 */
export class BatchWorker {
  /** This worker's name on the leases it holds. */
  readonly owner = `w_${randomId(16)}`;
  private readonly running = new Map<string, Running>();
  private readonly batchCache = new Map<string, StoredBatch>();
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** The batch being validated here (one at a time, beside the lines), and its end. */
  private validation: { batchId: string; done: Promise<void> } | undefined;
  /** No lines are claimed before this (a deferred line asked to wait). */
  private claimAfter = 0;

  constructor(private readonly options: BatchWorkerOptions) {}

  start(): void {
    if (this.loopDone || this.options.concurrency === 0) return;
    this.loopDone = this.loop();
    this.heartbeat = setInterval(
      () => void this.beat(),
      Math.max(100, Math.min(this.options.leaseMs / 3, 5_000)),
    );
    this.heartbeat.unref();
  }

  /** Stops claiming, lets running lines finish within `graceMs`, then cancels the rest and gives their leases back. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loopDone;
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) await delay(20);
    for (const run of this.running.values()) run.controller.abort(new Error("worker stopping"));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    // A validation writes nothing until its check is whole; it ends by itself (the file is bounded).
    await this.validation?.done;
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  private get now(): number {
    return this.options.lines.now();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      let worked = false;
      try {
        worked = await this.finalizeDue();
        worked = (await this.validateDue()) || worked;
        const free = this.options.concurrency - this.running.size;
        if (free > 0 && !this.stopping && Date.now() >= this.claimAfter) {
          const claimed = await this.options.batches.claim(this.owner, this.now, this.options.leaseMs, free);
          for (const line of claimed) this.startLine(line);
          worked ||= claimed.length > 0;
        }
      } catch (err) {
        this.options.logger.warn({ err }, "batch worker: a round failed; retrying");
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, worked ? 10 : this.options.pollIntervalMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Takes a batch waiting for validation, if none is being validated here, and checks it in the background. */
  private async validateDue(): Promise<boolean> {
    if (this.validation || this.stopping) return false;
    const { batches, leaseMs } = this.options;
    const [batch] = await batches.dueForValidation(this.now, 1);
    if (!batch) return false;
    const now = this.now;
    if (!(await batches.claimFinalization(batch.id, "validating", this.owner, now, now + leaseMs)))
      return true;
    const done = validateBatch({ ...this.options, owner: this.owner }, batch)
      .catch((err: unknown) => {
        // The lease lapses and a worker checks the file again.
        this.options.logger.warn(
          { err, batchId: batch.id },
          "batch validation failed; retried after its lease",
        );
      })
      .finally(() => {
        this.validation = undefined;
        this.wake?.();
      });
    this.validation = { batchId: batch.id, done };
    return true;
  }

  private startLine(line: ClaimedLine): void {
    const controller = new AbortController();
    const run: Running = { line, controller, done: Promise.resolve() };
    this.running.set(key(line), run);
    run.done = this.runOne(line, controller.signal).finally(() => {
      this.running.delete(key(line));
      this.wake?.();
    });
  }

  private async batchOf(batchId: string): Promise<StoredBatch | undefined> {
    let batch = this.batchCache.get(batchId);
    if (!batch) {
      batch = await this.options.batches.getForWorker(batchId);
      if (batch) this.batchCache.set(batchId, batch);
    }
    return batch;
  }

  private async runOne(line: ClaimedLine, signal: AbortSignal): Promise<void> {
    const { batches, lines, maxAttempts } = this.options;
    try {
      const batch = await this.batchOf(line.batchId);
      if (batch?.status !== "in_progress") {
        await batches.release(this.owner, [line], null);
        return;
      }
      let response: { statusCode: number; body: unknown };
      try {
        response = await runLine(
          lines,
          callerOf(batch),
          batch.endpoint as BatchEndpoint,
          JSON.parse(line.body),
          signal,
        );
      } catch (err) {
        // Cancelled, stopping or lease lost: the line stays unanswered for whoever comes next.
        if (signal.aborted) {
          await batches.release(this.owner, [line], null);
          return;
        }
        const error = toServiceError(err);
        if (isCapacityRefusal(error)) {
          const wait = deferralMs(error);
          this.claimAfter = Math.max(this.claimAfter, Date.now() + wait);
          await batches.release(this.owner, [line], this.now + wait, true);
          return;
        }
        if (error.retryable && line.attempts < maxAttempts) {
          await batches.release(this.owner, [line], this.now + 250 * 2 ** line.attempts);
          return;
        }
        response = { statusCode: error.status, body: errorBody(error) };
      }
      const result = encodeResultLine(
        objectIds.batchRequest(),
        line.customId,
        { statusCode: response.statusCode, requestId: lines.ids.request(), body: response.body },
        null,
      );
      await batches.complete(line.batchId, line.lineNo, result, response.statusCode >= 400);
    } catch (err) {
      this.options.logger.warn(
        { err, batchId: line.batchId, line: line.lineNo },
        "batch line failed; released",
      );
      await batches.release(this.owner, [line], null).catch(() => {});
    }
  }

  /**
   * Renews the leases of running lines (and of a validation), and stops lines whose batch was
   * cancelled or expired.
   */
  private async beat(): Promise<void> {
    const until = this.now + this.options.leaseMs;
    try {
      if (this.validation)
        await this.options.batches.renewBatchLease(this.validation.batchId, this.owner, until);
      if (this.running.size === 0) return;
      const runs = [...this.running.values()];
      await this.options.batches.renew(
        this.owner,
        runs.map((r) => r.line),
        until,
      );
      for (const batchId of new Set(runs.map((r) => r.line.batchId))) {
        const batch = await this.options.batches.getForWorker(batchId);
        if (batch) this.batchCache.set(batchId, batch);
        if (batch?.status !== "in_progress" || batch.expiresAt <= this.now) {
          for (const run of runs)
            if (run.line.batchId === batchId) run.controller.abort(new Error("batch ended"));
        }
      }
    } catch (err) {
      this.options.logger.warn({ err }, "batch worker: lease renewal failed");
    }
  }

  /** Ends batches whose lines are all answered, that were cancelled, or whose window passed. */
  private async finalizeDue(): Promise<boolean> {
    const { batches } = this.options;
    const due = await batches.dueForFinalization(this.now, 5);
    let finalized = false;
    for (const { batch, outcome } of due) {
      const now = this.now;
      if (
        !(await batches.claimFinalization(
          batch.id,
          batch.status,
          this.owner,
          now,
          now + this.options.leaseMs,
        ))
      ) {
        continue;
      }
      if (batch.status === "in_progress" && outcome === "completed")
        await batches.markFinalizing(batch.id, this.owner, now);
      await writeBatchOutput({ ...this.options, owner: this.owner, now: () => this.now }, batch, outcome);
      finalized = true;
    }
    return finalized;
  }
}

/**
 * A refusal that says "not now" rather than "this line is wrong": a rate limit (the caller's, or a
 * full slot queue), or no deployment with room under its caps. Batch lines wait those out.
 */
function isCapacityRefusal(error: ServiceError): boolean {
  return error.kind === "rate_limited" || error.code === "no_deployment_available";
}

/** How long a deferred line waits: what the refusal asked for, within bounds. */
function deferralMs(error: ServiceError): number {
  const asked = Number(error.hints["retry-after-ms"] ?? Number(error.hints["retry-after"]) * 1000);
  const wait = Number.isFinite(asked) && asked > 0 ? asked : DEFAULT_DEFER_MS;
  return Math.min(MAX_DEFER_MS, Math.max(100, wait));
}
