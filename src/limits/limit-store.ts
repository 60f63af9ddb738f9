/**
 * Counters behind per-key and per-project limits. One implementation keeps them in this
 * process (the embedded default); another keeps them in Redis with atomic scripts, so several
 * instances behind a load balancer share one limit.
 *
 * `scope` is an opaque string such as `key:key_abc` or `project:proj_x`.
 */
export interface LimitStore {
  /**
   * Token bucket of `capacity` units refilled evenly over `windowMs` (capacity per minute for a
   * per-minute limit). Takes `cost` units if available. A cost above capacity can never pass.
   */
  take(scope: string, capacity: number, windowMs: number, cost: number): Promise<BucketResult>;
  /**
   * Adjusts a bucket after the fact: a positive `units` refunds (capped at capacity), a negative
   * one charges more (the bucket may go into debt, delaying later requests).
   */
  adjust(scope: string, capacity: number, windowMs: number, units: number): Promise<void>;
  /** Reads a bucket without changing it (for x-ratelimit-* headers on other responses). */
  peek(scope: string, capacity: number, windowMs: number): Promise<BucketResult>;
  /**
   * Holds one of `max` concurrent places under `leaseId`. Leases expire after `ttlMs` so a
   * crashed instance cannot hold places forever.
   */
  acquireConcurrency(scope: string, max: number, leaseId: string, ttlMs: number): Promise<boolean>;
  /**
   * Takes every claim or none, in one atomic step (one script in Redis): the claims are looked at
   * in order, and the first one refused ends the look with nothing taken. One call instead of a
   * take or an acquire per limit and a rollback of those taken when a later one refuses: one
   * round trip to Redis, and no moment where another instance sees a half-taken reservation.
   * Each claim names its own scope (two claims on one scope are not supported).
   */
  claimAll(claims: readonly LimitClaim[]): Promise<ClaimOutcome>;
  releaseConcurrency(scope: string, leaseId: string): Promise<void>;
  /** Adds to a running total that resets at `periodKey` changes (monthly budgets); returns the new total. */
  addToTotal(scope: string, periodKey: string, amount: number): Promise<number>;
  /** The total for the period, or undefined when this store has not seen it (seed from storage then). */
  getTotal(scope: string, periodKey: string): Promise<number | undefined>;
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

/** One limit a request is admitted under: units from a bucket (as `take`), or a lease (as `acquireConcurrency`). */
export type LimitClaim =
  | { kind: "bucket"; scope: string; capacity: number; windowMs: number; cost: number }
  | { kind: "lease"; scope: string; max: number; leaseId: string; ttlMs: number };

/** What `claimAll` found. */
export interface ClaimOutcome {
  /** Every claim was taken. */
  allowed: boolean;
  /**
   * Each claim's outcome, in order, up to the refused one where one was refused (it is the last):
   * a bucket's result as `take` reports it, or whether the lease was held.
   */
  results: (BucketResult | boolean)[];
}
