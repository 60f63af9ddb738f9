import type { Generated } from "kysely";

/**
 * The tables, as kysely sees them. Times are unix milliseconds (bigint columns); JSON values are
 * text. Every tenant-owned table carries project_id, and every repository call takes it.
 */
export interface DatabaseSchema {
  projects: ProjectsTable;
  api_keys: ApiKeysTable;
  usage_records: UsageRecordsTable;
  responses: ResponsesTable;
  conversations: ConversationsTable;
  conversation_items: ConversationItemsTable;
  files: FilesTable;
  blob_chunks: BlobChunksTable;
  uploads: UploadsTable;
  upload_parts: UploadPartsTable;
  batches: BatchesTable;
  batch_lines: BatchLinesTable;
  vector_stores: VectorStoresTable;
  vector_store_file_batches: VectorStoreFileBatchesTable;
  vector_store_files: VectorStoreFilesTable;
  vector_store_file_pages: VectorStoreFilePagesTable;
  vector_store_chunks: VectorStoreChunksTable;
  /** SQLite only: the keyword index (FTS5), rowid = the chunk's id. */
  vector_store_chunks_fts: VectorStoreChunksFtsTable;
}

/** Limits that a project or a key may carry; null = no limit at that level. */
export interface LimitColumns {
  requests_per_minute: number | null;
  tokens_per_minute: number | null;
  max_concurrent: number | null;
  monthly_token_budget: number | null;
  monthly_cost_budget_usd: number | null;
}

export interface ProjectsTable extends LimitColumns {
  id: string;
  name: string;
  created_at: number;
  archived_at: number | null;
}

export interface ApiKeysTable extends LimitColumns {
  id: string;
  project_id: string;
  name: string;
  /** sha256 of the secret; the secret itself is never stored. */
  key_hash: string;
  /** The secret's first characters and last four, to recognise a key in lists. */
  key_hint: string;
  role: "admin" | "member";
  /** JSON array of model names, or null for every model. */
  allowed_models: string | null;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

/**
 * One row per (project, key, model, deployment, endpoint, status, UTC minute) and flush: the
 * requests of that group in that minute, summed (rows written before 008 are one request each).
 * A minute's group may have several rows (several flushes or instances); readers sum them.
 */
export interface UsageRecordsTable {
  id: string;
  project_id: string;
  key_id: string | null;
  model: string;
  deployment: string;
  endpoint: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  cost_usd: number;
  /** Summed over the row's requests: their mean latency is latency_ms / requests. */
  latency_ms: number;
  status: number;
  /** Requests the row sums. */
  requests: number;
  /** Start of the row's UTC minute. */
  created_at: number;
  /** UTC day (YYYY-MM-DD), for daily reports without date functions that differ per dialect. */
  day: string;
  /** UTC month (YYYY-MM), for monthly budgets. */
  month: string;
}

export interface ResponsesTable {
  id: string;
  project_id: string;
  created_at: number;
  previous_response_id: string | null;
  /** queued, in_progress, completed, incomplete, failed, cancelled. */
  status: string;
  /** Unix ms when the instance running a background response last said it still is; null otherwise. */
  heartbeat_at: number | null;
  /** The response object as the API returns it. */
  response_json: string;
  /** The items this response was given as input (the conversation before it is its chain's). */
  input_json: string;
}

export interface ConversationsTable {
  id: string;
  project_id: string;
  created_at: number;
  metadata_json: string;
}

export interface ConversationItemsTable {
  id: string;
  conversation_id: string;
  project_id: string;
  /** Order within the conversation: items are listed and given to the model in this order. */
  position: number;
  /** The item as the API speaks it. */
  item_json: string;
}

export interface FilesTable {
  id: string;
  project_id: string;
  /** The name the client gave: metadata only, never part of a path. */
  filename: string;
  purpose: string;
  bytes: number;
  mime_type: string;
  /** Where the bytes are in the blob store (a key we minted). */
  blob_key: string;
  created_at: number;
  expires_at: number | null;
}

export interface BlobChunksTable {
  blob_key: string;
  seq: number;
  data: Buffer;
  /** Unix ms; null for chunks written before it was recorded. */
  written_at: number | null;
}

export interface UploadsTable {
  id: string;
  project_id: string;
  filename: string;
  purpose: string;
  bytes: number;
  mime_type: string;
  status: "pending" | "completed" | "cancelled" | "expired";
  created_at: number;
  expires_at: number;
  file_expires_after_s: number | null;
  file_id: string | null;
}

export interface UploadPartsTable {
  id: string;
  upload_id: string;
  project_id: string;
  bytes: number;
  blob_key: string;
  created_at: number;
}

export interface BatchesTable {
  id: string;
  project_id: string;
  endpoint: string;
  model: string | null;
  input_file_id: string;
  completion_window: string;
  status: string;
  output_file_id: string | null;
  error_file_id: string | null;
  /** JSON array of {code, message, param, line}. */
  errors: string | null;
  /** JSON object of strings. */
  metadata: string | null;
  /** JSON of the creator's access (key, allowed models, limits), applied to every line. */
  caller: string;
  output_expires_after_s: number | null;
  total: number;
  completed: number;
  failed: number;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  finalize_owner: string | null;
  finalize_until: number | null;
}

export interface BatchLinesTable {
  batch_id: string;
  line_no: number;
  custom_id: string;
  /** The request body, JSON. */
  body: string;
  /** 1 once the result is written; a line counts as done only then. */
  done: number;
  lease_owner: string | null;
  lease_until: number | null;
  attempts: number;
  /** 1 when the result is an error line. */
  failed: number;
  /** The output line, JSON, written exactly once. */
  result: string | null;
}

export interface VectorStoresTable {
  id: string;
  project_id: string;
  name: string;
  description: string | null;
  /** JSON object of strings. */
  metadata: string | null;
  /** The model that embeds its chunks and queries, fixed at creation. */
  embedding_model: string;
  /** expires_after.days (anchor last_active_at); null = never expires. */
  expires_after_days: number | null;
  expires_at: number | null;
  last_active_at: number;
  created_at: number;
  /** When the expiry sweep found it expired; once set, the store is expired for good. */
  expired_at: number | null;
  /** The expiry sweep removing its data holds it until then. */
  purge_until: number | null;
  /** When its chunks, pages and index rows were gone. */
  purged_at: number | null;
  /** Raised with every change to the store's searchable chunks (in-memory copies compare it). */
  vectors_version: Generated<number>;
}

export interface VectorStoreFileBatchesTable {
  id: string;
  vector_store_id: string;
  project_id: string;
  created_at: number;
  cancelled_at: number | null;
}

export interface VectorStoreFilesTable {
  vector_store_id: string;
  file_id: string;
  project_id: string;
  batch_id: string | null;
  /** The file's name when it was attached (search results name it even after the file is gone). */
  filename: string;
  /** in_progress, completed, failed, cancelled. */
  status: string;
  error_code: string | null;
  error_message: string | null;
  /** JSON {max_chunk_size_tokens, chunk_overlap_tokens}. */
  chunking: string;
  /** JSON object of strings, numbers and booleans. */
  attributes: string | null;
  usage_bytes: number;
  /** JSON of the attaching caller's access, applied to the embedding calls of its ingestion. */
  caller: string;
  created_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  attempts: number;
}

export interface VectorStoreFilePagesTable {
  vector_store_id: string;
  file_id: string;
  project_id: string;
  seq: number;
  text: string;
}

export interface VectorStoreChunksTable {
  /** Generated by the database. */
  id: Generated<number>;
  vector_store_id: string;
  file_id: string;
  project_id: string;
  seq: number;
  text: string;
  tokens: number;
  /** Little-endian float32. */
  embedding: Buffer;
  searchable: number;
}

export interface VectorStoreChunksFtsTable {
  rowid: number;
  text: string;
  vector_store_id: string;
}
