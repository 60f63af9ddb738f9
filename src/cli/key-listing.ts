import type { ApiKey, Limits } from "../storage/repositories/types.js";

/** `keys list` columns, tab-separated so they can be cut; `--json` gives every field. */
export const KEY_LIST_HEADER = ["ID", "NAME", "ROLE", "KEY", "STATE", "MODELS", "LIMITS", "EXPIRES"].join(
  "\t",
);

/** One key as a line: what it may do and until when; never its secret (only the hint). */
export function formatKeyLine(key: ApiKey, now: number): string {
  const state = key.revokedAt ? "revoked" : key.expiresAt && key.expiresAt <= now ? "expired" : "active";
  return [
    key.id,
    key.name,
    key.role,
    key.keyHint,
    state,
    modelsOf(key.allowedModels),
    limitsOf(key.limits),
    key.expiresAt ? new Date(key.expiresAt).toISOString().replace(/\.\d{3}Z$/, "Z") : "never",
  ].join("\t");
}

function modelsOf(allowed: readonly string[] | null): string {
  if (allowed === null) return "all";
  return allowed.length ? allowed.join(",") : "none";
}

/** The key's own limits (its project's apply too; `projects list --json` shows those). */
export function limitsOf(limits: Limits): string {
  const parts = [
    limits.requestsPerMinute !== null && `rpm=${limits.requestsPerMinute}`,
    limits.tokensPerMinute !== null && `tpm=${limits.tokensPerMinute}`,
    limits.maxConcurrent !== null && `concurrent=${limits.maxConcurrent}`,
    limits.monthlyTokenBudget !== null && `monthly_tokens=${limits.monthlyTokenBudget}`,
    limits.monthlyCostBudgetUsd !== null && `monthly_usd=${limits.monthlyCostBudgetUsd}`,
  ].filter((part): part is string => typeof part === "string");
  return parts.length ? parts.join(",") : "none";
}
