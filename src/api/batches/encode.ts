import type { StoredBatch } from "../../storage/repositories/types.js";
import { unixSeconds } from "../files/encode.js";

const at = (ms: number | null) => (ms === null ? null : unixSeconds(ms));

export function encodeBatch(batch: StoredBatch): object {
  return {
    id: batch.id,
    object: "batch",
    endpoint: batch.endpoint,
    model: batch.model,
    errors: batch.errors ? { object: "list", data: batch.errors } : null,
    input_file_id: batch.inputFileId,
    completion_window: batch.completionWindow,
    status: batch.status,
    output_file_id: batch.outputFileId,
    error_file_id: batch.errorFileId,
    created_at: unixSeconds(batch.createdAt),
    in_progress_at: at(batch.inProgressAt),
    expires_at: at(batch.expiresAt),
    finalizing_at: at(batch.finalizingAt),
    completed_at: at(batch.completedAt),
    failed_at: at(batch.failedAt),
    expired_at: at(batch.expiredAt),
    cancelling_at: at(batch.cancellingAt),
    cancelled_at: at(batch.cancelledAt),
    request_counts: batch.counts,
    metadata: batch.metadata,
  };
}

/** One line of an output or error file, in OpenAI's format. */
export function encodeResultLine(
  id: string,
  customId: string,
  response: { statusCode: number; requestId: string; body: unknown } | null,
  error: { code: string; message: string } | null,
): string {
  return JSON.stringify({
    id,
    custom_id: customId,
    response: response
      ? { status_code: response.statusCode, request_id: response.requestId, body: response.body }
      : null,
    error,
  });
}
