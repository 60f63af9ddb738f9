import type { Principal } from "../../auth/principal.js";
import { invalidRequest, notFound } from "../../core/errors.js";
import { isObjectId, objectIds } from "../../core/ids.js";
import type { BatchRepository, StoredBatch } from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import { MAX_BATCH_INPUT_BYTES } from "./input.js";
import type { CreateBatchRequest } from "./schema.js";

const WINDOW_MS = 24 * 3600_000;

/** Creating, reading and cancelling batches; the work itself is the BatchWorker's. */
export class BatchService {
  constructor(
    private readonly deps: {
      batches: BatchRepository;
      files: FileService;
      now: () => number;
    },
  ) {}

  /**
   * Stores the batch as `validating` once its input file is found; a worker then checks the file
   * line by line and moves the batch to in_progress with its lines, or to failed with the
   * line-numbered errors (BatchValidation).
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
    if (file.bytes > MAX_BATCH_INPUT_BYTES) {
      throw invalidRequest(
        `A batch input file may be at most ${MAX_BATCH_INPUT_BYTES} bytes; this one has ${file.bytes}.`,
        "input_file_id",
        "file_too_large",
      );
    }
    const now = this.deps.now();
    const batch: StoredBatch = {
      id: objectIds.batch(),
      projectId: principal.projectId,
      endpoint: req.endpoint,
      model: null,
      inputFileId: file.id,
      completionWindow: req.completion_window,
      status: "validating",
      outputFileId: null,
      errorFileId: null,
      errors: null,
      metadata: req.metadata ?? null,
      caller: {
        keyId: principal.keyId,
        allowedModels: principal.allowedModels ? [...principal.allowedModels] : null,
        keyLimits: principal.keyLimits,
        projectLimits: principal.projectLimits,
      },
      outputExpiresAfterSeconds: req.output_expires_after?.seconds ?? null,
      counts: { total: 0, completed: 0, failed: 0 },
      createdAt: now,
      inProgressAt: null,
      expiresAt: now + WINDOW_MS,
      finalizingAt: null,
      completedAt: null,
      failedAt: null,
      expiredAt: null,
      cancellingAt: null,
      cancelledAt: null,
    };
    await this.deps.batches.create(batch, []);
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
