import type { LimitColumns } from "../schema.js";
import type { Limits } from "./types.js";

export function limitsFromRow(row: LimitColumns): Limits {
  return {
    requestsPerMinute: row.requests_per_minute,
    tokensPerMinute: row.tokens_per_minute,
    maxConcurrent: row.max_concurrent,
    monthlyTokenBudget: row.monthly_token_budget,
    monthlyCostBudgetUsd: row.monthly_cost_budget_usd,
  };
}

/** Only the limits the patch names; undefined leaves a column as it is, null clears it. */
export function limitColumns(limits: Partial<Limits> | undefined): Partial<LimitColumns> {
  if (!limits) return {};
  const out: Partial<LimitColumns> = {};
  if (limits.requestsPerMinute !== undefined) out.requests_per_minute = limits.requestsPerMinute;
  if (limits.tokensPerMinute !== undefined) out.tokens_per_minute = limits.tokensPerMinute;
  if (limits.maxConcurrent !== undefined) out.max_concurrent = limits.maxConcurrent;
  if (limits.monthlyTokenBudget !== undefined) out.monthly_token_budget = limits.monthlyTokenBudget;
  if (limits.monthlyCostBudgetUsd !== undefined) out.monthly_cost_budget_usd = limits.monthlyCostBudgetUsd;
  return out;
}

/** Every limit column unset: the starting point of a new row. */
export const NO_LIMIT_COLUMNS: LimitColumns = {
  requests_per_minute: null,
  tokens_per_minute: null,
  max_concurrent: null,
  monthly_token_budget: null,
  monthly_cost_budget_usd: null,
};
