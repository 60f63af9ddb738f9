import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import type { Principal } from "../../auth/principal.js";
import { objectIds, randomId } from "../../core/ids.js";
import { errorBody, toServiceError } from "../../http/errors.js";
import type {
  BatchOutcome,
  BatchRepository,
  ClaimedLine,
  StoredBatch,
  StoredFile,
} from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import { encodeResultLine } from "./encode.js";
import { type LineContext, runLine } from "./line-runner.js";
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

const RESULT_PAGE = 1000;
const key = (line: { batchId: string; lineNo: number }) => `${line.batchId}#${line.lineNo}`;

/**
 * Runs batch lines claimed from the database under leases, in every instance. A line counts as
 * answered only when its result row is written (once: the write is conditional), so a worker that
 * dies loses nothing — its leases lapse and another worker runs those lines again — and nothing is
 * answered twice. Lines go through the generation service like online requests, after them: a
 * line waits while interactive requests wait for the model's slots.
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
        const free = this.options.concurrency - this.running.size;
        if (free > 0 && !this.stopping && !this.interactiveWaiting()) {
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

  /** Interactive requests wait for the slots of a model some running line uses. */
  private interactiveWaiting(): boolean {
    for (const run of this.running.values()) {
      const model = this.batchCache.get(run.line.batchId)?.model;
      if (model && this.options.lines.generation.hasWaiters(model)) return true;
    }
    return false;
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
      // Interactive traffic first: the line starts once no request waits for the model.
      while (batch.model && lines.generation.hasWaiters(batch.model) && !signal.aborted) await delay(25);
      let response: { statusCode: number; body: unknown };
      try {
        response = await runLine(
          lines,
          principalOf(batch),
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

  /** Renews the leases of running lines, and stops lines whose batch was cancelled or expired. */
  private async beat(): Promise<void> {
    if (this.running.size === 0) return;
    try {
      const runs = [...this.running.values()];
      await this.options.batches.renew(
        this.owner,
        runs.map((r) => r.line),
        this.now + this.options.leaseMs,
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
      await this.writeOutput(batch, outcome);
      finalized = true;
    }
    return finalized;
  }

  /** The output and error files (one line per input line between them), then the final status. */
  private async writeOutput(batch: StoredBatch, outcome: BatchOutcome): Promise<void> {
    const { batches, files } = this.options;
    let unanswered = 0;
    const unansweredError =
      outcome === "expired"
        ? {
            code: "batch_expired",
            message: "This request could not be executed before the completion window expired.",
          }
        : {
            code: "batch_cancelled",
            message: "This request was not executed because the batch was cancelled.",
          };
    async function* linesOf(errors: boolean): AsyncIterable<Buffer> {
      let after = 0;
      for (;;) {
        const page = await batches.results(batch.id, after, RESULT_PAGE);
        if (page.length === 0) return;
        const out: string[] = [];
        for (const line of page) {
          after = line.lineNo;
          if (line.done && line.result !== null) {
            if (line.failed === errors) out.push(line.result);
          } else if (errors) {
            unanswered++;
            out.push(encodeResultLine(objectIds.batchRequest(), line.customId, null, unansweredError));
          }
        }
        if (out.length > 0) yield Buffer.from(`${out.join("\n")}\n`);
      }
    }
    const written: StoredFile[] = [];
    const store = async (errors: boolean): Promise<StoredFile | null> => {
      const stored = await files.storeBytes(linesOf(errors), Number.MAX_SAFE_INTEGER);
      if (stored.bytes === 0) {
        await files.discard(stored.blobKey);
        return null;
      }
      const file = files.describe(
        {
          projectId: batch.projectId,
          filename: `${batch.id}_${errors ? "error" : "output"}.jsonl`,
          purpose: "batch_output",
          mimeType: "application/jsonl",
          expiresAfterSeconds: batch.outputExpiresAfterSeconds ?? undefined,
        },
        stored.blobKey,
        stored.bytes,
      );
      written.push(file);
      return file;
    };
    try {
      const output = await store(false);
      const error = await store(true);
      const finished = await batches.finish(
        batch.id,
        this.owner,
        outcome,
        { output, error },
        unanswered,
        this.now,
      );
      if (!finished) for (const file of written) await files.discard(file.blobKey);
      else this.options.logger.info({ batchId: batch.id, outcome }, "batch finished");
    } catch (err) {
      for (const file of written) await files.discard(file.blobKey).catch(() => {});
      throw err;
    }
  }
}

function principalOf(batch: StoredBatch): Principal {
  return {
    projectId: batch.projectId,
    keyId: batch.caller.keyId,
    role: "member",
    allowedModels: batch.caller.allowedModels,
    keyLimits: batch.caller.keyLimits,
    projectLimits: batch.caller.projectLimits,
  };
}
