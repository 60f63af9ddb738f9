/** Vector stores as storage speaks of them: stores, their files (each also an ingestion job), file batches, chunks. */

import type { BatchCaller } from "./types.js";

export type VectorStoreFileStatus = "in_progress" | "completed" | "failed" | "cancelled";

/** How a file is cut: `auto` is resolved to its sizes when the file is attached. */
export interface ChunkingSizes {
  maxChunkSizeTokens: number;
  chunkOverlapTokens: number;
  /** Asked for as `auto`: the sizes may be lowered to fit the embedding model (never a static size). */
  auto?: boolean;
}

export type FileAttributeValue = string | number | boolean;
export type FileAttributes = Record<string, FileAttributeValue>;

export interface StoredVectorStore {
  id: string;
  projectId: string;
  name: string;
  description: string | null;
  metadata: Record<string, string> | null;
  embeddingModel: string;
  expiresAfterDays: number | null;
  expiresAt: number | null;
  lastActiveAt: number;
  createdAt: number;
  /**
   * When the expiry sweep expired it (its chunks then go); null before. Once set the store stays
   * expired, whatever expiresAt says.
   */
  expiredAt: number | null;
}

/** A store as it is created: never expired yet. */
export type NewVectorStore = Omit<StoredVectorStore, "expiredAt">;

export interface FileCounts {
  inProgress: number;
  completed: number;
  failed: number;
  cancelled: number;
  total: number;
}

export const NO_FILES: FileCounts = { inProgress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 };

/** What a store's files add up to. */
export interface VectorStoreUsage {
  usageBytes: number;
  counts: FileCounts;
}

export interface IngestionError {
  code: "server_error" | "unsupported_file" | "invalid_file";
  message: string;
}

export interface StoredVectorStoreFile {
  vectorStoreId: string;
  fileId: string;
  projectId: string;
  batchId: string | null;
  filename: string;
  status: VectorStoreFileStatus;
  lastError: IngestionError | null;
  chunking: ChunkingSizes;
  attributes: FileAttributes | null;
  usageBytes: number;
  /** The attaching caller's access: the embedding calls of its ingestion run with it. */
  caller: BatchCaller;
  createdAt: number;
}

export interface StoredFileBatch {
  id: string;
  vectorStoreId: string;
  projectId: string;
  createdAt: number;
  cancelledAt: number | null;
}

export interface PageQuery {
  limit: number;
  order: "asc" | "desc";
  /** An id: the items after it in the chosen order. */
  after?: string;
  /** An id: the items before it in the chosen order. */
  before?: string;
}

export interface VectorStoreFileQuery extends PageQuery {
  status?: VectorStoreFileStatus;
  batchId?: string;
}

/** An ingestion job a worker holds a lease on. */
export interface ClaimedIngestion {
  vectorStoreId: string;
  fileId: string;
  /** Claims so far, this one included. */
  attempts: number;
}

export interface NewChunk {
  seq: number;
  text: string;
  tokens: number;
  embedding: Float32Array;
}

/** A chunk found by a search, with the score of the ranking that found it. */
export interface ChunkHit {
  chunkId: number;
  score: number;
}

export interface StoredChunk {
  id: number;
  vectorStoreId: string;
  fileId: string;
  seq: number;
  text: string;
}

export interface VectorStoreRepository {
  /** The store and the files it starts with, in one transaction. */
  create(store: NewVectorStore, files: readonly StoredVectorStoreFile[]): Promise<void>;
  get(projectId: string, id: string): Promise<StoredVectorStore | undefined>;
  /** One more than `limit` when there are more. */
  list(projectId: string, query: PageQuery): Promise<StoredVectorStore[]>;
  update(
    projectId: string,
    id: string,
    patch: {
      name?: string;
      metadata?: Record<string, string> | null;
      expiresAfterDays?: number | null;
      expiresAt?: number | null;
      lastActiveAt?: number;
    },
  ): Promise<StoredVectorStore | undefined>;
  /** The store with its files, batches, text and chunks; whether there was one. */
  delete(projectId: string, id: string): Promise<boolean>;
  /** Bytes and file counts per store. */
  usage(projectId: string, ids: readonly string[]): Promise<Map<string, VectorStoreUsage>>;

  /**
   * Attaches files to `storeId` (with the batch they come in, if any). A file attached before is
   * attached anew: its chunks and text are dropped and it is ingested again. False, with nothing
   * written, when the store was expired by the sweep meanwhile.
   */
  attachFiles(
    storeId: string,
    files: readonly StoredVectorStoreFile[],
    batch?: StoredFileBatch,
  ): Promise<boolean>;
  getFile(projectId: string, storeId: string, fileId: string): Promise<StoredVectorStoreFile | undefined>;
  listFiles(
    projectId: string,
    storeId: string,
    query: VectorStoreFileQuery,
  ): Promise<StoredVectorStoreFile[]>;
  /** Every file of a store in `status` (search filters read their attributes). */
  filesWithStatus(
    projectId: string,
    storeId: string,
    status: VectorStoreFileStatus,
  ): Promise<StoredVectorStoreFile[]>;
  updateAttributes(
    projectId: string,
    storeId: string,
    fileId: string,
    attributes: FileAttributes | null,
  ): Promise<StoredVectorStoreFile | undefined>;
  /** Detaches a file with its chunks and text; whether it was attached. */
  deleteFile(projectId: string, storeId: string, fileId: string): Promise<boolean>;
  /** The parsed text of a file, page by page. */
  filePages(projectId: string, storeId: string, fileId: string): Promise<string[]>;

  getBatch(projectId: string, storeId: string, batchId: string): Promise<StoredFileBatch | undefined>;
  batchCounts(batchId: string): Promise<FileCounts>;
  /** Marks the batch cancelled and its unfinished files cancelled (their chunks dropped). */
  cancelBatch(projectId: string, storeId: string, batchId: string, now: number): Promise<void>;

  /**
   * Leases up to `max` files waiting for ingestion whose lease is free or lapsed, in stores that
   * have not expired (`FOR UPDATE SKIP LOCKED` on Postgres).
   */
  claimIngestion(owner: string, now: number, leaseMs: number, max: number): Promise<ClaimedIngestion[]>;
  renewIngestion(owner: string, jobs: readonly ClaimedIngestion[], until: number): Promise<void>;
  releaseIngestion(owner: string, jobs: readonly ClaimedIngestion[], retryAt: number | null): Promise<void>;
  /** The worker's view, across projects. */
  ingestionTarget(
    storeId: string,
    fileId: string,
  ): Promise<{ store: StoredVectorStore; file: StoredVectorStoreFile } | undefined>;
  /** Chunks already written for a file (a resumed ingestion starts after them). */
  chunkCount(storeId: string, fileId: string): Promise<number>;
  /**
   * Writes chunks while `owner` holds the file's lease; a chunk whose seq is already written is
   * skipped. False when the lease or the file is gone.
   */
  addChunks(owner: string, storeId: string, fileId: string, chunks: readonly NewChunk[]): Promise<boolean>;
  /**
   * Stores the file's text, makes its chunks searchable and marks it completed, if `owner` still
   * holds it; its usage_bytes are the bytes of its chunks' text and vectors.
   */
  completeIngestion(
    owner: string,
    storeId: string,
    fileId: string,
    pages: readonly string[],
  ): Promise<boolean>;
  /** Records the sizes the file is cut with (auto fitted to the model), if `owner` still holds it. */
  setChunking(owner: string, storeId: string, fileId: string, chunking: ChunkingSizes): Promise<boolean>;
  /** Marks the file failed (its chunks dropped), if `owner` still holds it. */
  failIngestion(owner: string, storeId: string, fileId: string, error: IngestionError): Promise<boolean>;

  /**
   * Expiry, step one: takes up to `max` stores whose expires_at has passed and whose data is not
   * yet purged, each until `now + leaseMs` (a store whose purge was cut short is taken again once
   * that passes; instances sharing the database do not take one store together). Each is marked
   * expired in the same transaction (expired_at, kept if already set), its unfinished files and
   * the file batches they belonged to cancelled, so ingestion stops and writes nothing more.
   */
  claimExpired(now: number, leaseMs: number, max: number): Promise<StoredVectorStore[]>;
  /**
   * Expiry, step two: drops the chunks, pages and index rows of one file of an expired store that
   * still has any, in one transaction, its usage_bytes set to 0; false once none is left. Doing
   * it twice (two instances) does no harm: the second finds nothing.
   */
  purgeExpiredFile(storeId: string): Promise<boolean>;
  /** Expiry, the end: records the store's data as gone. */
  finishPurge(storeId: string, now: number): Promise<void>;
}

/**
 * How a vector search is answered. `auto`: the store's vectors in memory where they fit the budget
 * (while a cold copy loads, the index answers where it can), else the index (sqlite-vec, pgvector),
 * else the database scan. `memory`: as auto, but waits for a cold copy to load. `index`: the index
 * where it can, else the database scan. `scan`: the exact scan read from the database (the reference).
 */
export type VectorSearchPath = "auto" | "memory" | "index" | "scan";

/** Keyword and vector retrieval over the searchable chunks of one store. */
export interface ChunkIndex {
  /** Which vector index the database has: `sqlite-vec`, `pgvector`, or `exact` (none: vectors are scanned). */
  readonly vectorIndex: "sqlite-vec" | "pgvector" | "exact";
  /** Bytes of stores' vectors searches may hold in memory (0: every search reads the database). */
  readonly memoryBudgetBytes: number;
  /** What is held in memory now (undefined when the budget is 0). */
  memoryStats(): { stores: number; bytes: number; budgetBytes: number } | undefined;
  /** Best first; `fileIds` restricts to those files (search filters). */
  keywordSearch(
    storeId: string,
    terms: readonly string[],
    fileIds: readonly string[] | null,
    limit: number,
  ): Promise<ChunkHit[]>;
  /** Best first, score = cosine similarity; `via` picks how (default `auto`). */
  vectorSearch(
    storeId: string,
    query: Float32Array,
    fileIds: readonly string[] | null,
    limit: number,
    options?: { via?: VectorSearchPath },
  ): Promise<ChunkHit[]>;
  chunks(ids: readonly number[]): Promise<StoredChunk[]>;
  /**
   * Readies the vector index where it needs it (pgvector: indexes chunks written before it was
   * enabled); searches scan until it resolves. Resolves to how many chunks it indexed.
   */
  prepareIndex?(): Promise<number>;
}
