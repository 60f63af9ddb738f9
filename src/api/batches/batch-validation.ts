import type { Logger } from "pino";
import { ServiceError } from "../../core/errors.js";
import type { BatchRepository, StoredBatch, StoredFile } from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import { checkBatchInput } from "./input.js";
import { callerOf, type LineContext } from "./line-runner.js";
import type { BatchEndpoint } from "./schema.js";

/**
 * The `validating` step of a batch, run by a worker holding the batch's lease after create has
 * answered: the input file is checked line by line (JSONL, size, line count, one endpoint, unique
 * custom_id, one model, bodies valid for the endpoint), then the batch moves to in_progress with
 * its lines, or to failed with the line-numbered errors. A batch cancelled meanwhile is left to
 * finalization (cancelled, with no lines); a worker that dies mid-check loses its lease and
 * another checks the file again — nothing is written until the check is whole.
 */
export async function validateBatch(
  deps: {
    batches: BatchRepository;
    files: FileService;
    lines: LineContext;
    logger: Pick<Logger, "info">;
    owner: string;
  },
  batch: StoredBatch,
): Promise<void> {
  const { batches, files, lines, owner } = deps;
  let file: StoredFile;
  try {
    file = await files.get(batch.projectId, batch.inputFileId);
  } catch (err) {
    if (!(err instanceof ServiceError) || err.kind !== "not_found") throw err;
    await batches.failValidation(
      batch.id,
      owner,
      [
        {
          code: "file_not_found",
          message: "The input file was deleted or expired before the batch was validated.",
          param: "input_file_id",
          line: null,
        },
      ],
      lines.now(),
    );
    return;
  }
  const checked = await checkBatchInput(
    files.content(file),
    batch.endpoint as BatchEndpoint,
    callerOf(batch),
    lines,
  );
  const now = lines.now();
  const moved =
    checked.errors.length > 0
      ? await batches.failValidation(batch.id, owner, checked.errors, now)
      : await batches.startRunning(batch.id, owner, checked.model, checked.lines, now);
  if (!moved) {
    // Cancelled meanwhile: finalization takes it from here, with no lines to answer.
    await batches.releaseBatchLease(batch.id, owner);
    return;
  }
  deps.logger.info(
    { batchId: batch.id, lines: checked.lines.length, errors: checked.errors.length },
    checked.errors.length > 0 ? "batch input refused" : "batch validated",
  );
}
