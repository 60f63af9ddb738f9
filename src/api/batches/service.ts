import type { Principal } from "../../auth/principal.js";
import { invalidRequest, notFound } from "../../core/errors.js";
import { isObjectId, objectIds } from "../../core/ids.js";
import type { BatchRepository, StoredBatch } from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import { checkBatchInput } from "./input.js";
import type { LineContext } from "./line-runner.js";
import type { CreateBatchRequest } from "./schema.js";

const WINDOW_MS = 24 * 3600_000;

/** Creating, reading and cancelling batches; the work itself is the BatchWorker's. */
export class BatchService {
  constructor(
    private readonly deps: {
      batches: BatchRepository;
      files: FileService;
      lines: LineContext;
      now: () => number;
    },
  ) {}

  /**
   * Checks the input file line by line and stores the batch with its lines in one transaction:
   * in_progress, or failed with the line-numbered errors.
   */
  async create(principal: Principal, req: CreateBatchRequest): Promise<StoredBatch> {
    const file = await this.deps.files.get(principal.projectId, req.input_file_id).catch(() => {
      throw notFound(
        `No such File object: ${req.input_file_id.slice(0, 80)}`,
        "file_not_found",
        "input_file_id",
      );
    });
    if (file.purpose !== "batch") {
      throw invalidRequest(
        "The input file must be uploaded with purpose 'batch'.",
        "input_file_id",
        "invalid_file_purpose",
      );
    }
    const checked = await checkBatchInput(
      this.deps.files.content(file),
      req.endpoint,
      principal,
      this.deps.lines,
    );
    const now = this.deps.now();
    const failed = checked.errors.length > 0;
    const batch: StoredBatch = {
      id: objectIds.batch(),
      projectId: principal.projectId,
      endpoint: req.endpoint,
      model: checked.model,
      inputFileId: file.id,
      completionWindow: req.completion_window,
      status: failed ? "failed" : "in_progress",
      outputFileId: null,
      errorFileId: null,
      errors: failed ? checked.errors : null,
      metadata: req.metadata ?? null,
      caller: {
        keyId: principal.keyId,
        allowedModels: principal.allowedModels ? [...principal.allowedModels] : null,
        keyLimits: principal.keyLimits,
        projectLimits: principal.projectLimits,
      },
      outputExpiresAfterSeconds: req.output_expires_after?.seconds ?? null,
      counts: { total: failed ? 0 : checked.lines.length, completed: 0, failed: 0 },
      createdAt: now,
      inProgressAt: failed ? null : now,
      expiresAt: now + WINDOW_MS,
      finalizingAt: null,
      completedAt: null,
      failedAt: failed ? now : null,
      expiredAt: null,
      cancellingAt: null,
      cancelledAt: null,
    };
    await this.deps.batches.create(batch, failed ? [] : checked.lines);
    return batch;
  }

  async get(projectId: string, batchId: string): Promise<StoredBatch> {
    const batch = isObjectId(batchId, "batch_") ? await this.deps.batches.get(projectId, batchId) : undefined;
    if (!batch)
      throw notFound(`No such Batch object: ${batchId.slice(0, 80)}`, "batch_not_found", "batch_id");
    return batch;
  }

  list(projectId: string, query: { limit: number; after?: string }): Promise<StoredBatch[]> {
    return this.deps.batches.list(projectId, query);
  }

  async cancel(projectId: string, batchId: string): Promise<StoredBatch> {
    const batch = await this.get(projectId, batchId);
    if (batch.status !== "in_progress" && batch.status !== "validating") {
      if (batch.status === "cancelling" || batch.status === "cancelled") return batch;
      throw invalidRequest(
        `A batch that is ${batch.status} cannot be cancelled.`,
        null,
        "batch_not_cancellable",
      );
    }
    return (await this.deps.batches.requestCancel(projectId, batchId, this.deps.now())) ?? batch;
  }
}
