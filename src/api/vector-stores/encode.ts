import type {
  FileCounts,
  StoredFileBatch,
  StoredVectorStore,
  StoredVectorStoreFile,
  VectorStoreUsage,
} from "../../storage/repositories/vector-store-types.js";
import { unixSeconds } from "../files/encode.js";
import { isExpired } from "./expiry.js";
import type { SearchResult } from "./search.js";

const at = (ms: number | null) => (ms === null ? null : unixSeconds(ms));

function encodeCounts(counts: FileCounts) {
  return {
    in_progress: counts.inProgress,
    completed: counts.completed,
    failed: counts.failed,
    cancelled: counts.cancelled,
    total: counts.total,
  };
}

export function encodeVectorStore(store: StoredVectorStore, usage: VectorStoreUsage, now: number): object {
  return {
    id: store.id,
    object: "vector_store",
    created_at: unixSeconds(store.createdAt),
    name: store.name,
    ...(store.description === null ? {} : { description: store.description }),
    usage_bytes: usage.usageBytes,
    file_counts: encodeCounts(usage.counts),
    status: isExpired(store, now) ? "expired" : usage.counts.inProgress > 0 ? "in_progress" : "completed",
    // Absent rather than null: the spec's expires_after is an object when present.
    ...(store.expiresAfterDays === null
      ? {}
      : { expires_after: { anchor: "last_active_at", days: store.expiresAfterDays } }),
    expires_at: at(store.expiresAt),
    last_active_at: unixSeconds(store.lastActiveAt),
    metadata: store.metadata ?? {},
  };
}

export function encodeVectorStoreFile(file: StoredVectorStoreFile): object {
  return {
    id: file.fileId,
    object: "vector_store.file",
    usage_bytes: file.usageBytes,
    created_at: unixSeconds(file.createdAt),
    vector_store_id: file.vectorStoreId,
    status: file.status,
    last_error: file.lastError,
    chunking_strategy: {
      type: "static",
      static: {
        max_chunk_size_tokens: file.chunking.maxChunkSizeTokens,
        chunk_overlap_tokens: file.chunking.chunkOverlapTokens,
      },
    },
    attributes: file.attributes ?? {},
  };
}

/** A batch is cancelled once asked, in progress while files are, failed when every file failed, else completed. */
export function encodeFileBatch(batch: StoredFileBatch, counts: FileCounts): object {
  const status =
    batch.cancelledAt !== null
      ? "cancelled"
      : counts.inProgress > 0
        ? "in_progress"
        : counts.total > 0 && counts.failed === counts.total
          ? "failed"
          : "completed";
  return {
    id: batch.id,
    object: "vector_store.files_batch",
    created_at: unixSeconds(batch.createdAt),
    vector_store_id: batch.vectorStoreId,
    status,
    file_counts: encodeCounts(counts),
  };
}

export function encodeSearchPage(queries: readonly string[], results: readonly SearchResult[]): object {
  return {
    object: "vector_store.search_results.page",
    search_query: queries,
    data: results.map((r) => ({
      file_id: r.fileId,
      filename: r.filename,
      score: r.score,
      attributes: r.attributes ?? {},
      content: [{ type: "text", text: r.text }],
    })),
    has_more: false,
    next_page: null,
  };
}

export function encodeFileContent(pages: readonly string[]): object {
  return {
    object: "vector_store.file_content.page",
    data: pages.map((text) => ({ type: "text", text })),
    has_more: false,
    next_page: null,
  };
}
