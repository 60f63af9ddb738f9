/** Storage-facing domain types. Repositories speak these, never rows or wire JSON. */

export interface Limits {
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
  maxConcurrent: number | null;
  monthlyTokenBudget: number | null;
  monthlyCostBudgetUsd: number | null;
}

export const NO_LIMITS: Limits = {
  requestsPerMinute: null,
  tokensPerMinute: null,
  maxConcurrent: null,
  monthlyTokenBudget: null,
  monthlyCostBudgetUsd: null,
};

export interface Project {
  id: string;
  name: string;
  createdAt: number;
  archivedAt: number | null;
  limits: Limits;
}

export type KeyRole = "admin" | "member";

export interface ApiKey {
  id: string;
  projectId: string;
  name: string;
  keyHint: string;
  role: KeyRole;
  /** null = every model. */
  allowedModels: string[] | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  limits: Limits;
}

/** One request's usage, as the recorder receives it; stored rolled up (see UsageRepository). */
export interface UsageRecord {
  projectId: string;
  keyId: string | null;
  model: string;
  deployment: string;
  endpoint: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
  latencyMs: number;
  status: number;
  createdAt: number;
}

export type UsageGroup = "project" | "key" | "model" | "day";

export interface UsageQuery {
  /** Restrict to one project (tenant); undefined = all projects (admin reports). */
  projectId?: string;
  keyId?: string;
  /** Inclusive UTC days, YYYY-MM-DD. */
  fromDay?: string;
  toDay?: string;
  groupBy: UsageGroup[];
}

export interface UsageSummaryRow {
  projectId?: string;
  keyId?: string | null;
  model?: string;
  day?: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
}

export interface ProjectRepository {
  create(input: { id: string; name: string; limits?: Partial<Limits>; now: number }): Promise<Project>;
  get(projectId: string): Promise<Project | undefined>;
  list(options?: { includeArchived?: boolean }): Promise<Project[]>;
  update(projectId: string, patch: { name?: string; limits?: Partial<Limits> }): Promise<Project | undefined>;
  archive(projectId: string, now: number): Promise<boolean>;
}

export interface NewApiKey {
  id: string;
  projectId: string;
  name: string;
  keyHash: string;
  keyHint: string;
  role: KeyRole;
  allowedModels: string[] | null;
  expiresAt: number | null;
  limits?: Partial<Limits>;
  now: number;
}

export interface ApiKeyRepository {
  create(input: NewApiKey): Promise<ApiKey>;
  /** How a request's tenant is found: by the hash of the presented secret. */
  findByHash(keyHash: string): Promise<(ApiKey & { keyHash: string }) | undefined>;
  get(projectId: string, keyId: string): Promise<ApiKey | undefined>;
  list(projectId: string): Promise<ApiKey[]>;
  update(
    projectId: string,
    keyId: string,
    patch: {
      name?: string;
      allowedModels?: string[] | null;
      expiresAt?: number | null;
      limits?: Partial<Limits>;
    },
  ): Promise<ApiKey | undefined>;
  revoke(projectId: string, keyId: string, now: number): Promise<boolean>;
  touch(keyIds: string[], now: number): Promise<void>;
  /** Keys that are neither revoked nor expired, across all projects. */
  countActive(now: number): Promise<number>;
}

export interface UsageRepository {
  /**
   * Stores these requests' usage rolled up: one row per (project, key, model, deployment,
   * endpoint, status, UTC minute) of this call, beside any rows of the same minute already stored.
   */
  insertMany(records: readonly UsageRecord[]): Promise<void>;
  summarize(query: UsageQuery): Promise<UsageSummaryRow[]>;
  /** Tokens and cost this month for a project, or for one key of it. */
  monthTotals(
    scope: { projectId: string; keyId?: string },
    month: string,
  ): Promise<{ tokens: number; costUsd: number }>;
}

export interface Repositories {
  projects: ProjectRepository;
  apiKeys: ApiKeyRepository;
  usage: UsageRepository;
  responses: ResponseRepository;
  conversations: ConversationRepository;
  files: FileRepository;
  uploads: UploadRepository;
  batches: BatchRepository;
}

/**
 * A stored response. Its object and input items are kept as the JSON the Responses API speaks:
 * that format is the resource itself, stored and returned as it is.
 */
export interface StoredResponse {
  id: string;
  projectId: string;
  createdAt: number;
  previousResponseId: string | null;
  /** queued, in_progress, completed, incomplete, failed, cancelled. */
  status: string;
  /** Background responses: when the instance running it last said it still is. */
  heartbeatAt: number | null;
  responseJson: string;
  inputJson: string;
}

export const UNFINISHED_RESPONSE_STATUSES: readonly string[] = ["queued", "in_progress"];

export interface ResponseRepository {
  /** Inserts, or replaces the object, status and heartbeat of one saved before. */
  save(response: StoredResponse): Promise<void>;
  /** Marks running background responses as still running. */
  heartbeat(ids: readonly string[], now: number): Promise<void>;
  /** Unfinished responses whose heartbeat is older than `before` (their instance is gone). */
  stale(before: number): Promise<StoredResponse[]>;
  /** Replaces an unfinished response's object and status; false when it had finished meanwhile. */
  finishUnfinished(id: string, status: string, responseJson: string): Promise<boolean>;
  /** undefined when there is none in that project. */
  get(projectId: string, id: string): Promise<StoredResponse | undefined>;
  /** Whether one was deleted. */
  delete(projectId: string, id: string): Promise<boolean>;
}

export interface Conversation {
  id: string;
  projectId: string;
  createdAt: number;
  metadataJson: string;
}

/** An item of a conversation, kept as the JSON the API speaks (with its id inside). */
export interface ConversationItem {
  id: string;
  itemJson: string;
}

export interface ConversationRepository {
  create(conversation: Conversation, items: readonly ConversationItem[]): Promise<void>;
  get(projectId: string, id: string): Promise<Conversation | undefined>;
  /** undefined when there is none in that project. */
  updateMetadata(projectId: string, id: string, metadataJson: string): Promise<Conversation | undefined>;
  /** Deletes it with its items; whether there was one. */
  delete(projectId: string, id: string): Promise<boolean>;
  /** Adds items after the last; false when the conversation is not in that project. */
  append(projectId: string, id: string, items: readonly ConversationItem[]): Promise<boolean>;
  /** Items in order (`desc`: newest first), from after the item `after`, at most `limit` (+1 to tell has_more). */
  listItems(
    projectId: string,
    id: string,
    page: { order: "asc" | "desc"; after?: string; limit: number },
  ): Promise<ConversationItem[]>;
  getItem(projectId: string, id: string, itemId: string): Promise<ConversationItem | undefined>;
  deleteItem(projectId: string, id: string, itemId: string): Promise<boolean>;
}

export type FilePurpose =
  | "assistants"
  | "assistants_output"
  | "batch"
  | "batch_output"
  | "fine-tune"
  | "fine-tune-results"
  | "vision"
  | "user_data"
  | "evals";

export interface StoredFile {
  id: string;
  projectId: string;
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  mimeType: string;
  blobKey: string;
  createdAt: number;
  expiresAt: number | null;
}

export interface FileListQuery {
  purpose?: string;
  limit: number;
  /** A file id: list the files after it in the chosen order. */
  after?: string;
  order: "asc" | "desc";
}

export interface FileRepository {
  create(file: StoredFile): Promise<void>;
  get(projectId: string, fileId: string): Promise<StoredFile | undefined>;
  /** One more than `limit` when there are more, so the caller can say has_more. */
  list(projectId: string, query: FileListQuery): Promise<StoredFile[]>;
  /** Removes the row; the caller removes the bytes. */
  delete(projectId: string, fileId: string): Promise<StoredFile | undefined>;
  /** Files past their expiry, across projects (the sweeper's view). */
  expired(now: number, limit: number): Promise<StoredFile[]>;
  /** Which of `keys` a file or an upload part refers to, across projects (the sweeper's view). */
  referencedBlobKeys(keys: readonly string[]): Promise<Set<string>>;
}

export type UploadStatus = "pending" | "completed" | "cancelled" | "expired";

export interface StoredUpload {
  id: string;
  projectId: string;
  filename: string;
  purpose: FilePurpose;
  bytes: number;
  mimeType: string;
  status: UploadStatus;
  createdAt: number;
  expiresAt: number;
  fileExpiresAfterSeconds: number | null;
  fileId: string | null;
}

export interface StoredUploadPart {
  id: string;
  uploadId: string;
  projectId: string;
  bytes: number;
  blobKey: string;
  createdAt: number;
}

export interface UploadRepository {
  create(upload: StoredUpload): Promise<void>;
  get(projectId: string, uploadId: string): Promise<StoredUpload | undefined>;
  addPart(part: StoredUploadPart): Promise<void>;
  parts(projectId: string, uploadId: string): Promise<StoredUploadPart[]>;
  /**
   * Moves a pending upload to `status` (with the file it became); false when it was no longer
   * pending (completed, cancelled or expired meanwhile). With `file`, the file row is created in
   * the same transaction.
   */
  finish(
    projectId: string,
    uploadId: string,
    status: Exclude<UploadStatus, "pending">,
    file?: StoredFile,
  ): Promise<boolean>;
  /** Removes part rows (after their bytes are gone or now part of a file). */
  deleteParts(projectId: string, uploadId: string): Promise<void>;
  /** Pending uploads past their expiry, across projects. */
  expired(now: number, limit: number): Promise<StoredUpload[]>;
  /**
   * Uploads no longer pending that still have parts (a crash between ending the upload and
   * removing its parts), across projects.
   */
  finishedWithParts(limit: number): Promise<StoredUpload[]>;
}

export type BatchStatus =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

export interface BatchLineError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** The creator's access, applied to every line of the batch as it was when the batch was made. */
export interface BatchCaller {
  keyId: string | null;
  allowedModels: string[] | null;
  keyLimits: Limits;
  projectLimits: Limits;
}

export interface StoredBatch {
  id: string;
  projectId: string;
  endpoint: string;
  model: string | null;
  inputFileId: string;
  completionWindow: string;
  status: BatchStatus;
  outputFileId: string | null;
  errorFileId: string | null;
  errors: BatchLineError[] | null;
  metadata: Record<string, string> | null;
  caller: BatchCaller;
  outputExpiresAfterSeconds: number | null;
  counts: { total: number; completed: number; failed: number };
  createdAt: number;
  inProgressAt: number | null;
  expiresAt: number;
  finalizingAt: number | null;
  completedAt: number | null;
  failedAt: number | null;
  expiredAt: number | null;
  cancellingAt: number | null;
  cancelledAt: number | null;
}

export interface NewBatchLine {
  lineNo: number;
  customId: string;
  body: string;
}

/** A line a worker holds a lease on. */
export interface ClaimedLine {
  batchId: string;
  lineNo: number;
  customId: string;
  body: string;
  /** Claims so far, this one included. */
  attempts: number;
}

export interface LineResult {
  lineNo: number;
  customId: string;
  done: boolean;
  failed: boolean;
  /** The output line (JSON) once done. */
  result: string | null;
}

/** How a batch ends once its lines are done, or it is cancelled, or its window passed. */
export type BatchOutcome = "completed" | "cancelled" | "expired";

/**
 * Batches and their lines. Batch-level steps (validating the input, then writing the output files)
 * are done by one worker at a time under a lease on the batch (`claimFinalization`), which lapses
 * when that worker dies, so another takes the step over.
 */
export interface BatchRepository {
  /** The batch and all its lines, in one transaction. */
  create(batch: StoredBatch, lines: readonly NewBatchLine[]): Promise<void>;
  get(projectId: string, batchId: string): Promise<StoredBatch | undefined>;
  /** The worker's view, across projects. */
  getForWorker(batchId: string): Promise<StoredBatch | undefined>;
  list(projectId: string, query: { limit: number; after?: string }): Promise<StoredBatch[]>;
  /** in_progress (or validating) → cancelling; the batch as it is afterwards. */
  requestCancel(projectId: string, batchId: string, now: number): Promise<StoredBatch | undefined>;
  /** Validating batches whose lease no one holds (new, or their worker died). */
  dueForValidation(now: number, limit: number): Promise<StoredBatch[]>;
  /**
   * validating → in_progress with its lines, for the holder of the batch's lease, in one
   * transaction; false (nothing written) when the batch was cancelled or the lease lost meanwhile.
   */
  startRunning(
    batchId: string,
    owner: string,
    model: string | null,
    lines: readonly NewBatchLine[],
    now: number,
  ): Promise<boolean>;
  /** validating → failed with the input's errors, for the holder of the batch's lease. */
  failValidation(
    batchId: string,
    owner: string,
    errors: readonly BatchLineError[],
    now: number,
  ): Promise<boolean>;
  /** Extends `owner`'s lease on a batch-level step; false when it no longer holds it. */
  renewBatchLease(batchId: string, owner: string, until: number): Promise<boolean>;
  /** Gives a batch-level lease back at once (a validation that found the batch cancelled). */
  releaseBatchLease(batchId: string, owner: string): Promise<void>;
  /**
   * Leases up to `max` unanswered lines of running batches whose lease is free or lapsed
   * (`FOR UPDATE SKIP LOCKED` on Postgres, so instances never take the same line).
   */
  claim(owner: string, now: number, leaseMs: number, max: number): Promise<ClaimedLine[]>;
  /** Extends the leases `owner` still holds; returns the lines it no longer holds. */
  renew(owner: string, lines: readonly { batchId: string; lineNo: number }[], until: number): Promise<void>;
  /**
   * Writes a line's result and counts it, once: false when the line was already answered, or the
   * batch is no longer taking results (being finalized, cancelled).
   */
  complete(batchId: string, lineNo: number, result: string, failed: boolean): Promise<boolean>;
  /**
   * Gives leases back (shutdown, a retry later at `retryAt`). `uncounted`: the claim does not count
   * as an attempt (the line was deferred, never tried: capacity kept for interactive requests).
   */
  release(
    owner: string,
    lines: readonly { batchId: string; lineNo: number }[],
    retryAt: number | null,
    uncounted?: boolean,
  ): Promise<void>;
  /**
   * Batches ready to end (all lines answered, cancelling, past their window — validated or not)
   * whose lease no one holds.
   */
  dueForFinalization(now: number, limit: number): Promise<{ batch: StoredBatch; outcome: BatchOutcome }[]>;
  /**
   * Takes the batch's lease (to validate it, or to finalize it) until `until`, if it is still in
   * status `from`; false if another holds it or it changed.
   */
  claimFinalization(
    batchId: string,
    from: BatchStatus,
    owner: string,
    now: number,
    until: number,
  ): Promise<boolean>;
  /** in_progress → finalizing, for the holder of the finalization. */
  markFinalizing(batchId: string, owner: string, now: number): Promise<void>;
  /** The lines in order, from `afterLineNo`. */
  results(batchId: string, afterLineNo: number, limit: number): Promise<LineResult[]>;
  /** Records the output files and the final status, if `owner` still holds the finalization. */
  finish(
    batchId: string,
    owner: string,
    outcome: BatchOutcome,
    files: { output: StoredFile | null; error: StoredFile | null },
    extraFailed: number,
    now: number,
  ): Promise<boolean>;
}
