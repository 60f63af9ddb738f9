import type { Logger } from "pino";
import { objectIds } from "../../core/ids.js";
import type {
  BatchOutcome,
  BatchRepository,
  StoredBatch,
  StoredFile,
} from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import { encodeResultLine } from "./encode.js";

const RESULT_PAGE = 1000;

/**
 * Writes a batch's output and error files (one line per input line between them: answered lines
 * as they were answered, the rest as cancelled or expired), then records them with the final
 * status — if `owner` still holds the batch's lease; otherwise the files are removed again.
 */
export async function writeBatchOutput(
  deps: {
    batches: BatchRepository;
    files: FileService;
    logger: Pick<Logger, "info">;
    owner: string;
    now: () => number;
  },
  batch: StoredBatch,
  outcome: BatchOutcome,
): Promise<void> {
  const { batches, files } = deps;
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
      deps.owner,
      outcome,
      { output, error },
      unanswered,
      deps.now(),
    );
    if (!finished) for (const file of written) await files.discard(file.blobKey);
    else deps.logger.info({ batchId: batch.id, outcome }, "batch finished");
  } catch (err) {
    for (const file of written) await files.discard(file.blobKey).catch(() => {});
    throw err;
  }
}
