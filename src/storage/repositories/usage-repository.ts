import { CompiledQuery, type Kysely, sql } from "kysely";
import { timeOrderedId } from "../../core/ids.js";
import type { DatabaseSchema } from "../schema.js";
import type { UsageGroup, UsageQuery, UsageRecord, UsageRepository, UsageSummaryRow } from "./types.js";
import { rollUpUsage, type UsageRollup } from "./usage-rollup.js";

const GROUP_COLUMNS = { project: "project_id", key: "key_id", model: "model", day: "day" } as const;
/** Rows per INSERT statement: well under SQLite's and Postgres' parameter limits. */
const INSERT_CHUNK = 200;

/**
 * Rows in the next INSERT when `remaining` are left: full chunks, then the tail in powers of two.
 * A flush of any size then runs one of nine INSERT texts, which stay compiled here and prepared in
 * the database (SQLite: ~1 ms to prepare a 200-row one), instead of a text of the tail's own size.
 */
function chunkRows(remaining: number): number {
  return remaining >= INSERT_CHUNK ? INSERT_CHUNK : 2 ** Math.floor(Math.log2(remaining));
}

/** A usage row, as stored: one group's requests in one minute. */
function usageRow(r: UsageRollup) {
  const iso = new Date(r.minute).toISOString();
  return {
    // In time order: a random key would make each insert rewrite a random page of the
    // primary-key index (SQLite: ~20-25 µs per row at 60k rows, ~14 µs in time order).
    id: `usage_${timeOrderedId(r.minute)}`,
    project_id: r.projectId,
    key_id: r.keyId,
    model: r.model,
    deployment: r.deployment,
    endpoint: r.endpoint,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    cached_tokens: r.cachedTokens,
    cost_usd: r.costUsd,
    latency_ms: Math.round(r.latencyMs),
    status: r.status,
    requests: r.requests,
    created_at: r.minute,
    day: iso.slice(0, 10),
    month: iso.slice(0, 7),
  };
}

type UsageRow = ReturnType<typeof usageRow>;

/**
 * The columns in the order kysely binds a row's values (the order of its keys). Should the two
 * ever differ, insertMany's check finds it and lets kysely compile every chunk.
 */
const USAGE_COLUMNS: readonly (keyof UsageRow)[] = [
  "id",
  "project_id",
  "key_id",
  "model",
  "deployment",
  "endpoint",
  "prompt_tokens",
  "completion_tokens",
  "cached_tokens",
  "cost_usd",
  "latency_ms",
  "status",
  "requests",
  "created_at",
  "day",
  "month",
];

function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

export class KyselyUsageRepository implements UsageRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  /**
   * The INSERT text for a chunk of n rows, compiled by kysely once per n: compiling a 200-row
   * insert (3,000 value nodes) per flush cost more than the values themselves. Nine at most
   * (chunkRows' sizes).
   */
  private readonly insertTexts = new Map<number, string>();

  async insertMany(records: readonly UsageRecord[]) {
    if (records.length === 0) return;
    const rollups = rollUpUsage(records);
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < rollups.length; ) {
        const size = chunkRows(rollups.length - i);
        const rows = rollups.slice(i, i + size).map(usageRow);
        i += size;
        const values = rows.flatMap((row) => USAGE_COLUMNS.map((column) => row[column]));
        const text = this.insertTexts.get(rows.length);
        if (text !== undefined) {
          await trx.executeQuery(CompiledQuery.raw(text, values));
          continue;
        }
        const compiled = trx.insertInto("usage_records").values(rows).compile();
        // Kept only when kysely's parameters are exactly these values in this order: then the text
        // serves any chunk of this size.
        if (sameValues(compiled.parameters, values)) this.insertTexts.set(rows.length, compiled.sql);
        await trx.executeQuery(compiled);
      }
    });
  }

  async summarize(query: UsageQuery): Promise<UsageSummaryRow[]> {
    const groups = [...new Set(query.groupBy)];
    const columns = groups.map((g) => GROUP_COLUMNS[g]);
    let q = this.db
      .selectFrom("usage_records")
      .select(columns)
      .select([
        sql<number>`coalesce(sum(requests), 0)`.as("requests"),
        sql<number>`coalesce(sum(prompt_tokens), 0)`.as("prompt_tokens"),
        sql<number>`coalesce(sum(completion_tokens), 0)`.as("completion_tokens"),
        sql<number>`coalesce(sum(cached_tokens), 0)`.as("cached_tokens"),
        sql<number>`coalesce(sum(cost_usd), 0)`.as("cost_usd"),
      ]);
    if (query.projectId !== undefined) q = q.where("project_id", "=", query.projectId);
    if (query.keyId !== undefined) q = q.where("key_id", "=", query.keyId);
    if (query.fromDay) q = q.where("day", ">=", query.fromDay);
    if (query.toDay) q = q.where("day", "<=", query.toDay);
    if (columns.length > 0) q = q.groupBy(columns);
    for (const column of columns) q = q.orderBy(column);
    const rows = await q.execute();
    return rows.map((row) => toSummary(row as unknown as Record<string, unknown>, groups));
  }

  async monthTotals(scope: { projectId: string; keyId?: string }, month: string) {
    let q = this.db
      .selectFrom("usage_records")
      .select([
        sql<number>`coalesce(sum(prompt_tokens + completion_tokens), 0)`.as("tokens"),
        sql<number>`coalesce(sum(cost_usd), 0)`.as("cost"),
      ])
      .where("project_id", "=", scope.projectId)
      .where("month", "=", month);
    if (scope.keyId !== undefined) q = q.where("key_id", "=", scope.keyId);
    const row = await q.executeTakeFirstOrThrow();
    return { tokens: Number(row.tokens), costUsd: Number(row.cost) };
  }
}

function toSummary(row: Record<string, unknown>, groups: UsageGroup[]): UsageSummaryRow {
  const out: UsageSummaryRow = {
    requests: Number(row.requests),
    promptTokens: Number(row.prompt_tokens),
    completionTokens: Number(row.completion_tokens),
    cachedTokens: Number(row.cached_tokens),
    costUsd: Number(row.cost_usd),
  };
  if (groups.includes("project")) out.projectId = row.project_id as string;
  if (groups.includes("key")) out.keyId = (row.key_id as string | null) ?? null;
  if (groups.includes("model")) out.model = row.model as string;
  if (groups.includes("day")) out.day = row.day as string;
  return out;
}
