import type { UsageRecord } from "./types.js";

const MINUTE = 60_000;
/**
 * The integer columns are 32-bit on Postgres: a row whose sums would pass this starts another row
 * of the same group (and monthTotals adds prompt and completion tokens of a row before summing).
 */
const MAX_INT = 2 ** 31 - 1;

/** The requests of one group in one UTC minute, summed: what one usage row stores. */
export interface UsageRollup {
  projectId: string;
  keyId: string | null;
  model: string;
  deployment: string;
  endpoint: string;
  status: number;
  /** Start of the UTC minute the requests finished in (unix ms). */
  minute: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costUsd: number;
  /** Summed over the requests: their mean is latencyMs / requests. */
  latencyMs: number;
}

function sameGroup(row: UsageRollup, r: UsageRecord, minute: number): boolean {
  return (
    row.minute === minute &&
    row.status === r.status &&
    row.endpoint === r.endpoint &&
    row.projectId === r.projectId &&
    row.keyId === r.keyId &&
    row.model === r.model &&
    row.deployment === r.deployment
  );
}

function fits(row: UsageRollup, r: UsageRecord): boolean {
  return (
    row.requests < MAX_INT &&
    row.promptTokens + row.completionTokens + r.promptTokens + r.completionTokens <= MAX_INT &&
    row.cachedTokens + r.cachedTokens <= MAX_INT &&
    Math.round(row.latencyMs + r.latencyMs) <= MAX_INT
  );
}

/**
 * Rolls per-request records up into one row per (project, key, model, deployment, endpoint,
 * status, UTC minute), in the order each group first appears. Nothing reads single requests, only
 * sums, and a row per request made the usage table the busiest writer of a gateway. Rows are never
 * merged with rows already stored (another flush, another instance): the sums stay right either way.
 */
export function rollUpUsage(records: readonly UsageRecord[]): UsageRollup[] {
  const rows: UsageRollup[] = [];
  const open = new Map<string, UsageRollup>();
  let last: UsageRollup | undefined;
  for (const r of records) {
    const minute = Math.floor(r.createdAt / MINUTE) * MINUTE;
    // Consecutive requests of one group (steady traffic) skip building the group's key.
    let row = last !== undefined && sameGroup(last, r, minute) ? last : undefined;
    let key: string | undefined;
    if (row === undefined) {
      key = groupKey(r, minute);
      row = open.get(key);
      // \0 cannot collide in practice; if it did, the other group gets a row of its own.
      if (row !== undefined && !sameGroup(row, r, minute)) row = undefined;
    }
    if (row === undefined || !fits(row, r)) {
      row = startRow(r, minute);
      rows.push(row);
      open.set(key ?? groupKey(r, minute), row);
    } else {
      row.requests += 1;
      row.promptTokens += r.promptTokens;
      row.completionTokens += r.completionTokens;
      row.cachedTokens += r.cachedTokens;
      row.costUsd += r.costUsd;
      row.latencyMs += r.latencyMs;
    }
    last = row;
  }
  return rows;
}

function groupKey(r: UsageRecord, minute: number): string {
  return `${minute}\0${r.status}\0${r.endpoint}\0${r.projectId}\0${r.keyId ?? "\u0001"}\0${r.model}\0${r.deployment}`;
}

function startRow(r: UsageRecord, minute: number): UsageRollup {
  return {
    projectId: r.projectId,
    keyId: r.keyId,
    model: r.model,
    deployment: r.deployment,
    endpoint: r.endpoint,
    status: r.status,
    minute,
    requests: 1,
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    cachedTokens: r.cachedTokens,
    costUsd: r.costUsd,
    latencyMs: r.latencyMs,
  };
}
