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
