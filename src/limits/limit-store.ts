/**
 * Counters behind per-key and per-project limits. One implementation keeps them in this
 * process (the embedded default); another keeps them in Redis with atomic scripts, so several
 * instances behind a load balancer share one limit.
 *
 * `scope` is an opaque string such as `key:key_abc` or `project:proj_x`.
 */
export interface LimitStore {
  /** Reads a bucket without changing it: `allowed` says whether one unit is available. */
  peek(scope: string, capacity: number, windowMs: number): Promise<BucketResult>;
  /**
   * Takes every claim or none, in one atomic step (one script in Redis): the claims are looked at
   * in order, and the first one refused ends the look with nothing taken: one round trip to
   * Redis per request, and no moment where another instance sees a half-taken reservation. Each
   * claim names its own scope (two claims on one scope are not supported).
   */
  claimAll(claims: readonly LimitClaim[]): Promise<ClaimOutcome>;
  /**
   * Settles what a request took, in one step (one script in Redis): refunds (or further charges)
   * to buckets, leases given up, amounts added to period totals. Arguments that would make the
   * arithmetic meaningless are refused (RangeError) before any of them applies.
   */
  settleAll(settlements: readonly LimitSettlement[]): Promise<void>;
  /**
   * Each scope's total for the period, in order (one read, MGET in Redis); undefined where this
   * store has not seen it (seed it from storage then).
   */
  getTotals(scopes: readonly string[], periodKey: string): Promise<(number | undefined)[]>;
  /** Seeds a period total from storage if it is not known yet; returns the total now in force. */
  seedTotal(scope: string, periodKey: string, value: number): Promise<number>;
  close(): Promise<void>;
}

export interface BucketResult {
  allowed: boolean;
  /** Units left after this call (0 when refused). */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
  /** When refused: milliseconds until `cost` units will be available (Infinity if cost > capacity). */
  retryAfterMs: number;
}

/**
 * One limit a request is admitted under.
 * - bucket: `cost` units from a token bucket of `capacity` units refilled evenly over `windowMs`
 *   (capacity per minute for a per-minute limit). A cost above capacity can never pass.
 * - lease: one of `max` concurrent places, held under `leaseId` (holding it already renews it).
 *   Leases expire after `ttlMs`, so a crashed instance cannot hold places forever.
 */
export type LimitClaim =
  | { kind: "bucket"; scope: string; capacity: number; windowMs: number; cost: number }
  | { kind: "lease"; scope: string; max: number; leaseId: string; ttlMs: number };

/** What `claimAll` found. */
export interface ClaimOutcome {
  /** Every claim was taken. */
  allowed: boolean;
  /**
   * Each claim's outcome, in order, up to the refused one where one was refused (it is the last):
   * a bucket's result (refused: `remaining` 0 and the wait for its cost), or whether the lease was held.
   */
  results: (BucketResult | boolean)[];
}

/**
 * One thing a request gives back or adds when it ends.
 * - bucket: `units` back to a bucket (capped at capacity), or, negative, charged to it (the bucket
 *   may go into debt, delaying later requests).
 * - lease: the place held under `leaseId` is free again (releasing what is not held is harmless).
 * - total: `amount` added to a running total that starts again when `periodKey` changes (monthly
 *   budgets).
 */
export type LimitSettlement =
  | { kind: "bucket"; scope: string; capacity: number; windowMs: number; units: number }
  | { kind: "lease"; scope: string; leaseId: string }
  | { kind: "total"; scope: string; periodKey: string; amount: number };
