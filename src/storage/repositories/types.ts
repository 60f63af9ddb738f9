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
  files: FileRepository;
  uploads: UploadRepository;
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
}
