import { NO_LIMITS } from "../../src/storage/repositories/types.js";
import type {
  NewVectorStore,
  StoredVectorStoreFile,
} from "../../src/storage/repositories/vector-store-types.js";

/**
 * A vector store file row as the attach path writes it (in progress, default chunking, attached by
 * an unlimited caller), for tests and benchmarks that fill a store through the repository.
 */
export function storedFileRow(
  storeId: string,
  fileId: string,
  extra: Partial<StoredVectorStoreFile> = {},
): StoredVectorStoreFile {
  return {
    vectorStoreId: storeId,
    fileId,
    projectId: "proj_a",
    batchId: null,
    filename: `${fileId}.txt`,
    status: "in_progress",
    lastError: null,
    chunking: { maxChunkSizeTokens: 800, chunkOverlapTokens: 400 },
    attributes: null,
    usageBytes: 0,
    caller: { keyId: null, allowedModels: null, keyLimits: NO_LIMITS, projectLimits: NO_LIMITS },
    createdAt: Date.now(),
    ...extra,
  };
}

/** A new vector store row (no expiry, embedding model `embed`), for the same tests and benchmarks. */
export function newStoreRow(id: string, extra: Partial<NewVectorStore> = {}): NewVectorStore {
  const now = Date.now();
  return {
    id,
    projectId: "proj_a",
    name: id,
    description: null,
    metadata: null,
    embeddingModel: "embed",
    expiresAfterDays: null,
    expiresAt: null,
    lastActiveAt: now,
    createdAt: now,
    ...extra,
  };
}
