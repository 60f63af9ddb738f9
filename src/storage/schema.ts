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
  latency_ms: number;
  status: number;
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
