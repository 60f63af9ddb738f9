import type { Logger } from "pino";
import type { ServiceError } from "../../core/errors.js";
import { objectIds } from "../../core/ids.js";
import { errorBody, toServiceError } from "../../http/errors.js";
import { LeasedJobRunner } from "../../queue/leased-job-runner.js";
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

/** A deferred line waits this long when the refusal named no time. */
const DEFAULT_DEFER_MS = 1_000;
/** …and never longer than this at once (a limit's window, a deployment's minute). */
const MAX_DEFER_MS = 60_000;

const lineKey = (line: ClaimedLine) => `${line.batchId}#${line.lineNo}`;

/**
 * Runs batches in every instance: validates new ones, runs their lines claimed from the database
 * under leases, and writes their output. Lines are the jobs of the shared LeasedJobRunner (claim,
 * renewal, release on shutdown); validation and finalization are batch-level steps the runner's
 * loop does before each claim, under a lease on the batch. A line counts as answered only when its
 * result row is written (once: the write is conditional), so a worker that dies loses nothing — its
 * leases lapse and another worker runs those lines again — and nothing is answered twice.
 *
 * Lines go through the generation service like online requests, at batch priority: a local model
 * serves waiting interactive requests first and keeps slots free for them (SlotScheduler), and the
 * router lets batch lines fill only a share of a deployment's rate caps. A line refused for want of
 * capacity (a rate limit, a full queue, no deployment with room) is deferred, not failed: it goes
 * back unanswered, its attempt uncounted, and this worker claims nothing more until the wait the
 * refusal asked for has passed.
 */
export class BatchWorker {
  private readonly runner: LeasedJobRunner<ClaimedLine>;
  private readonly batchCache = new Map<string, StoredBatch>();
  /** The batch being validated here (one at a time, beside the lines), and its end. */
  private validation: { batchId: string; done: Promise<void> } | undefined;
  /** No lines are claimed before this (a deferred line asked to wait). */
  private claimAfter = 0;

  constructor(private readonly options: BatchWorkerOptions) {
    const { batches } = options;
    this.runner = new LeasedJobRunner<ClaimedLine>({
      name: "batch worker",
      store: {
        claim: (owner, now, leaseMs, max) => batches.claim(owner, now, leaseMs, max),
        renew: (owner, lines, until) => batches.renew(owner, lines, until),
        release: (owner, lines, retryAt) => batches.release(owner, lines, retryAt),
      },
      keyOf: lineKey,
      run: (line, signal) => this.runOne(line, signal),
      concurrency: options.concurrency,
      leaseMs: options.leaseMs,
      pollIntervalMs: options.pollIntervalMs,
      now: () => options.lines.now(),
      logger: options.logger,
      mayClaim: () => Date.now() >= this.claimAfter,
      beforeClaim: async () => {
        const finalized = await this.finalizeDue();
        const validating = await this.validateDue();
        return finalized || validating;
      },
      onHeartbeat: () => this.renewValidation(),
      afterRenew: (running) => this.stopEndedBatches(running),
      // A validation writes nothing until its check is whole; it ends by itself (the file is bounded).
      drain: async () => {
        await this.validation?.done;
      },
    });
  }

  /** This worker's name on the leases it holds. */
  get owner(): string {
    return this.runner.owner;
  }

  start(): void {
    this.runner.start();
  }

  /** Stops claiming, lets running lines finish within `graceMs`, then cancels the rest and gives their leases back. */
  stop(graceMs: number): Promise<void> {
    return this.runner.stop(graceMs);
  }

  private get now(): number {
    return this.options.lines.now();
  }

  /** Takes a batch waiting for validation, if none is being validated here, and checks it in the background. */
  private async validateDue(): Promise<boolean> {
    if (this.validation || this.runner.isStopping) return false;
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
        this.runner.wake();
      });
    this.validation = { batchId: batch.id, done };
    return true;
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

  /** Keeps the lease on the batch being validated here. */
  private async renewValidation(): Promise<void> {
    if (this.validation)
      await this.options.batches.renewBatchLease(
        this.validation.batchId,
        this.owner,
        this.now + this.options.leaseMs,
      );
  }

  /** After each renewal: stops the lines whose batch was cancelled or expired. */
  private async stopEndedBatches(
    running: readonly { job: ClaimedLine; abort(reason: Error): void }[],
  ): Promise<void> {
    for (const batchId of new Set(running.map((r) => r.job.batchId))) {
      const batch = await this.options.batches.getForWorker(batchId);
      if (batch) this.batchCache.set(batchId, batch);
      if (batch?.status !== "in_progress" || batch.expiresAt <= this.now) {
        for (const run of running) if (run.job.batchId === batchId) run.abort(new Error("batch ended"));
      }
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
