import type { ApiKey, Limits, Project, UsageSummaryRow } from "../../storage/repositories/types.js";

const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export function encodeLimits(limits: Limits) {
  return {
    requests_per_minute: limits.requestsPerMinute,
    tokens_per_minute: limits.tokensPerMinute,
    max_concurrent: limits.maxConcurrent,
    monthly_token_budget: limits.monthlyTokenBudget,
    monthly_cost_budget_usd: limits.monthlyCostBudgetUsd,
  };
}

export function encodeProject(p: Project) {
  return {
    id: p.id,
    object: "project",
    name: p.name,
    created_at: seconds(p.createdAt),
    archived_at: seconds(p.archivedAt),
    status: p.archivedAt === null ? "active" : "archived",
    limits: encodeLimits(p.limits),
  };
}

export function encodeApiKey(k: ApiKey, secret?: string) {
  return {
    id: k.id,
    object: "api_key",
    project_id: k.projectId,
    name: k.name,
    hint: k.keyHint,
    role: k.role,
    allowed_models: k.allowedModels,
    created_at: seconds(k.createdAt),
    expires_at: seconds(k.expiresAt),
    revoked_at: seconds(k.revokedAt),
    last_used_at: seconds(k.lastUsedAt),
    limits: encodeLimits(k.limits),
    // Shown exactly once, in the response that creates the key.
    ...(secret ? { secret } : {}),
  };
}

export function encodeUsageRow(r: UsageSummaryRow) {
  return {
    ...(r.projectId !== undefined ? { project_id: r.projectId } : {}),
    ...(r.keyId !== undefined ? { key_id: r.keyId } : {}),
    ...(r.model !== undefined ? { model: r.model } : {}),
    ...(r.day !== undefined ? { day: r.day } : {}),
    requests: r.requests,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    cached_tokens: r.cachedTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    cost_usd: Math.round(r.costUsd * 1e6) / 1e6,
  };
}

export const list = <T>(data: T[]) => ({ object: "list", data });
