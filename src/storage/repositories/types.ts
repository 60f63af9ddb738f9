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
  responses: ResponseRepository;
  conversations: ConversationRepository;
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
