import type { Principal } from "../auth/principal.js";
import { ServiceError } from "../core/errors.js";
import type { Limits, UsageRepository } from "../storage/repositories/types.js";
import type { BucketResult, LimitClaim, LimitSettlement, LimitStore } from "./limit-store.js";
import { rateLimitHeaders, retryHeaders } from "./rate-limit-headers.js";

const MINUTE = 60_000;
/** Honoured by the official OpenAI SDKs, which otherwise retry every 429 with backoff. */
const DO_NOT_RETRY: Readonly<Record<string, string>> = Object.freeze({ "x-should-retry": "false" });
/** A lease outlives the longest request; a crashed instance's places free themselves after it. */
const CONCURRENCY_LEASE_MS = 15 * MINUTE;

export interface Reservation {
  /** x-ratelimit-* headers for the response. */
  headers: Record<string, string>;
  /**
   * Settles the reservation with what the request really used (refunding unused tokens, adding
   * to monthly totals) and frees its concurrency places. Safe to call once; later calls do nothing.
   */
  settle(used: { tokens: number; costUsd: number }): Promise<void>;
}

/** A key's or a project's limits, and the names of its counters in the limit store. */
interface Scope {
  id: string;
  limits: Limits;
  rpm: string;
  tpm: string;
  conc: string;
  monthTokens: string;
  monthCost: string;
}

function scopeOf(id: string, limits: Limits): Scope {
  return {
    id,
    limits,
    rpm: `${id}:rpm`,
    tpm: `${id}:tpm`,
    conc: `${id}:conc`,
    monthTokens: `${id}:month-tokens`,
    monthCost: `${id}:month-cost`,
  };
}

/**
 * Applies a principal's key and project limits: monthly budgets, requests and tokens per
 * minute, and concurrent requests. Tokens are reserved up front (prompt + the completion bound)
 * and settled with the real usage afterwards.
 */
export class LimitEnforcer {
  /** The UTC month of the last request, and the times it spans: formatted once a month, not per request. */
  private month: { key: string; from: number; until: number } | undefined;
  private readonly scopesByPrincipal = new WeakMap<Principal, Scope[]>();

  constructor(
    private readonly store: LimitStore,
    private readonly usage: UsageRepository,
    private readonly now: () => number = Date.now,
  ) {}

  async reserve(principal: Principal, estimatedTokens: number, leaseId: string): Promise<Reservation> {
    try {
      return await this.tryReserve(principal, estimatedTokens, leaseId);
    } catch (err) {
      if (err instanceof ServiceError) throw err;
      // The limit store (Redis) or storage is unreachable: fail closed, with a clear 503 rather
      // than a 500, since limits and budgets cannot be checked.
      throw new ServiceError(
        "unavailable",
        "Usage limits cannot be checked right now. Please retry shortly.",
        {
          code: "service_unavailable",
          hints: retryHeaders(1000),
          cause: err,
        },
      );
    }
  }

  private async tryReserve(
    principal: Principal,
    estimatedTokens: number,
    leaseId: string,
  ): Promise<Reservation> {
    const scopes = this.scopesOf(principal);
    const month = this.monthOf(this.now());
    // Most keys and projects have no monthly budget: then there is nothing to read, and no call.
    if (scopes.some(hasBudget)) await this.checkBudgets(principal, scopes, month);

    const { claims, kinds } = claimsOf(scopes, estimatedTokens, leaseId);
    let requests: WindowState | undefined;
    let tokens: WindowState | undefined;
    if (claims.length > 0) {
      const outcome = await this.store.claimAll(claims);
      const { results } = outcome;
      // The windows looked at: on a refusal, those before it still describe the caller's standing.
      const looked = outcome.allowed ? results.length : results.length - 1;
      for (let i = 0; i < looked; i++) {
        const claim = claims[i] as LimitClaim;
        if (claim.kind !== "bucket") continue;
        const state = { limit: claim.capacity, result: results[i] as BucketResult };
        if (kinds[i] === "requests") requests = tighter(requests, state);
        else tokens = tighter(tokens, state);
      }
      if (!outcome.allowed) {
        const claim = claims[looked] as LimitClaim;
        if (claim.kind === "lease") {
          throw new ServiceError(
            "rate_limited",
            `Too many concurrent requests: the limit is ${claim.max} at a time.`,
            {
              code: "rate_limit_exceeded",
              hints: { ...retryHeaders(1000), ...windowHeaders(requests, tokens) },
            },
          );
        }
        const kind = kinds[looked] === "requests" ? "requests" : "tokens";
        throw tooMany(
          kind,
          claim.capacity,
          results[looked] as BucketResult,
          kind === "tokens" ? estimatedTokens : undefined,
        );
      }
    }

    const headers = windowHeaders(requests, tokens);
    let settled = false;
    return {
      headers,
      settle: async (used) => {
        if (settled) return;
        settled = true;
        const settlements = settlementsOf(scopes, estimatedTokens, used, leaseId, month);
        // A store that cannot settle now loses this request's refund and totals, never the response.
        if (settlements.length > 0) await this.store.settleAll(settlements).catch(() => {});
      },
    };
  }

  /** "2026-12": the period monthly budgets count in. */
  private monthOf(now: number): string {
    const known = this.month;
    if (known && now >= known.from && now < known.until) return known.key;
    const date = new Date(now);
    const from = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
    const until = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
    const key = date.toISOString().slice(0, 7);
    this.month = { key, from, until };
    return key;
  }

  /**
   * The principal's scopes, made once per principal: the authenticator hands out the same
   * principal for a key while it is cached, so its counters' names are not built per request.
   */
  private scopesOf(principal: Principal): Scope[] {
    let scopes = this.scopesByPrincipal.get(principal);
    if (!scopes) {
      scopes = [];
      if (principal.keyId) scopes.push(scopeOf(`key:${principal.keyId}`, principal.keyLimits));
      scopes.push(scopeOf(`project:${principal.projectId}`, principal.projectLimits));
      this.scopesByPrincipal.set(principal, scopes);
    }
    return scopes;
  }

  /**
   * Refuses a request once the key's or the project's monthly budget is spent. Every total the
   * scopes need is read at once (one round trip to Redis); a scope whose totals this store has
   * not seen this period is seeded from storage first.
   */
  private async checkBudgets(principal: Principal, scopes: Scope[], month: string): Promise<void> {
    const budgeted = scopes.filter(hasBudget);
    if (budgeted.length === 0) return;
    const totals = await this.store.getTotals(
      budgeted.flatMap((scope) => [scope.monthTokens, scope.monthCost]),
      month,
    );
    for (const [i, scope] of budgeted.entries()) {
      const { monthlyTokenBudget, monthlyCostBudgetUsd } = scope.limits;
      const isKey = scope.id.startsWith("key:");
      let tokens = totals[2 * i];
      let costUsd = totals[2 * i + 1];
      if (tokens === undefined || costUsd === undefined) {
        const storageScope = isKey
          ? { projectId: principal.projectId, keyId: principal.keyId ?? undefined }
          : { projectId: principal.projectId };
        const stored = await this.usage.monthTotals(storageScope, month);
        tokens = await this.store.seedTotal(scope.monthTokens, month, stored.tokens);
        costUsd = await this.store.seedTotal(scope.monthCost, month, stored.costUsd);
      }
      const over =
        (monthlyTokenBudget !== null && tokens >= monthlyTokenBudget) ||
        (monthlyCostBudgetUsd !== null && costUsd >= monthlyCostBudgetUsd);
      if (over) {
        throw new ServiceError(
          "quota_exceeded",
          `You exceeded the current monthly quota of this ${isKey ? "API key" : "project"}. Ask an administrator to raise its budget.`,
          // The budget comes back next month: the SDKs' automatic retries would only add load.
          { code: "insufficient_quota", hints: DO_NOT_RETRY },
        );
      }
    }
  }
}

function hasBudget(scope: Scope): boolean {
  return scope.limits.monthlyTokenBudget !== null || scope.limits.monthlyCostBudgetUsd !== null;
}

/** What a claim stands for: what its refusal says, and which x-ratelimit-* headers it feeds. */
type ClaimKind = "requests" | "tokens" | "concurrent";

/** A request's claims on its key's and then its project's limits, in that order. */
function claimsOf(
  scopes: readonly Scope[],
  estimatedTokens: number,
  leaseId: string,
): { claims: LimitClaim[]; kinds: ClaimKind[] } {
  const claims: LimitClaim[] = [];
  const kinds: ClaimKind[] = [];
  for (const scope of scopes) {
    const { requestsPerMinute: rpm, tokensPerMinute: tpm, maxConcurrent } = scope.limits;
    if (rpm !== null) {
      claims.push({ kind: "bucket", scope: scope.rpm, capacity: rpm, windowMs: MINUTE, cost: 1 });
      kinds.push("requests");
    }
    if (tpm !== null) {
      claims.push({
        kind: "bucket",
        scope: scope.tpm,
        capacity: tpm,
        windowMs: MINUTE,
        cost: estimatedTokens,
      });
      kinds.push("tokens");
    }
    if (maxConcurrent !== null) {
      claims.push({
        kind: "lease",
        scope: scope.conc,
        max: maxConcurrent,
        leaseId,
        ttlMs: CONCURRENCY_LEASE_MS,
      });
      kinds.push("concurrent");
    }
  }
  return { claims, kinds };
}

/** What a request gives back and adds when it ends: its tpm refund, its leases, its monthly totals. */
function settlementsOf(
  scopes: readonly Scope[],
  estimatedTokens: number,
  used: { tokens: number; costUsd: number },
  leaseId: string,
  month: string,
): LimitSettlement[] {
  const settlements: LimitSettlement[] = [];
  for (const scope of scopes) {
    const { tokensPerMinute: tpm, maxConcurrent, monthlyTokenBudget, monthlyCostBudgetUsd } = scope.limits;
    if (tpm !== null && used.tokens !== estimatedTokens) {
      const units = estimatedTokens - used.tokens;
      settlements.push({ kind: "bucket", scope: scope.tpm, capacity: tpm, windowMs: MINUTE, units });
    }
    if (maxConcurrent !== null) settlements.push({ kind: "lease", scope: scope.conc, leaseId });
    if (monthlyTokenBudget !== null && used.tokens > 0) {
      settlements.push({ kind: "total", scope: scope.monthTokens, periodKey: month, amount: used.tokens });
    }
    if (monthlyCostBudgetUsd !== null && used.costUsd > 0) {
      settlements.push({ kind: "total", scope: scope.monthCost, periodKey: month, amount: used.costUsd });
    }
  }
  return settlements;
}

/** A per-minute limit that applies to a request, and where its bucket stands after taking it. */
interface WindowState {
  limit: number;
  result: BucketResult;
}

/** With both a key and a project limit, the headers report the one closer to running out. */
function tighter(current: WindowState | undefined, next: WindowState): WindowState {
  return current && current.result.remaining <= next.result.remaining ? current : next;
}

/** x-ratelimit-* for every per-minute limit that applies; none when neither key nor project has one. */
function windowHeaders(
  requests: WindowState | undefined,
  tokens: WindowState | undefined,
): Record<string, string> {
  const state = (w: WindowState | undefined) =>
    w && { limit: w.limit, remaining: w.result.remaining, resetMs: w.result.resetMs };
  return rateLimitHeaders({ requests: state(requests), tokens: state(tokens) });
}

function tooMany(
  kind: "requests" | "tokens",
  limit: number,
  result: BucketResult,
  requested?: number,
): ServiceError {
  const never = !Number.isFinite(result.retryAfterMs);
  const message = never
    ? `Request too large: it needs ${requested} tokens but the limit is ${limit} tokens per minute. Reduce the prompt or max_tokens.`
    : `Rate limit reached: ${limit} ${kind} per minute. Please try again in ${Math.ceil(result.retryAfterMs / 1000)}s.`;
  return new ServiceError("rate_limited", message, {
    code: "rate_limit_exceeded",
    hints: {
      // No wait makes a request larger than the limit pass: tell clients not to retry it.
      ...(never ? DO_NOT_RETRY : retryHeaders(result.retryAfterMs)),
      ...rateLimitHeaders({ [kind]: { limit, remaining: 0, resetMs: result.resetMs } }),
    },
  });
}
