import type { BucketResult, ClaimOutcome, LimitClaim, LimitSettlement, LimitStore } from "./limit-store.js";

/**
 * The result every bucket operation reports, from the bucket's level after the operation.
 * Shared by both stores so they cannot disagree on rounding.
 *
 * `tokens` may be negative (debt from `adjust`). `cost` is what was asked for; a refused call
 * reports `remaining: 0`.
 */
export function bucketResult(
  allowed: boolean,
  tokens: number,
  capacity: number,
  windowMs: number,
  cost: number,
): BucketResult {
  const msPerUnit = windowMs / capacity;
  const resetMs = tokens >= capacity ? 0 : Math.ceil((capacity - tokens) * msPerUnit);
  if (allowed) return { allowed, remaining: Math.max(0, Math.floor(tokens)), resetMs, retryAfterMs: 0 };
  const retryAfterMs = cost > capacity ? Number.POSITIVE_INFINITY : Math.ceil((cost - tokens) * msPerUnit);
  return { allowed, remaining: 0, resetMs, retryAfterMs };
}

/** Rejects arguments that would make the bucket arithmetic meaningless (NaN, division by zero). */
export function checkBucketArgs(capacity: number, windowMs: number, units: number): void {
  if (!(capacity > 0) || !Number.isFinite(capacity))
    throw new RangeError(`capacity must be > 0, got ${capacity}`);
  if (!(windowMs > 0) || !Number.isFinite(windowMs))
    throw new RangeError(`windowMs must be > 0, got ${windowMs}`);
  if (!Number.isFinite(units)) throw new RangeError(`units must be finite, got ${units}`);
}

/** A claim's cost: a negative one would fill the bucket past capacity (refunds are settlements). */
export function checkTakeArgs(capacity: number, windowMs: number, cost: number): void {
  checkBucketArgs(capacity, windowMs, cost);
  if (cost < 0) throw new RangeError(`cost must be >= 0, got ${cost}`);
}

/** Claims' arguments, all checked before any is taken. */
export function checkClaims(claims: readonly LimitClaim[]): void {
  for (const claim of claims)
    if (claim.kind === "bucket") checkTakeArgs(claim.capacity, claim.windowMs, claim.cost);
}

/** Settlements' arguments, all checked before any applies. */
export function checkSettlements(settlements: readonly LimitSettlement[]): void {
  for (const settlement of settlements) {
    if (settlement.kind === "bucket")
      checkBucketArgs(settlement.capacity, settlement.windowMs, settlement.units);
    else if (settlement.kind === "total" && !Number.isFinite(settlement.amount))
      throw new RangeError(`amount must be finite, got ${settlement.amount}`);
  }
}

interface Bucket {
  tokens: number;
  updatedAt: number;
  /** When the bucket is full again; from then on it is indistinguishable from no bucket. */
  fullAt: number;
}

interface PeriodTotal {
  periodKey: string;
  total: number;
}

export interface MemoryLimitStoreOptions {
  /**
   * How often an unref'd timer drops full buckets and expired leases, so that memory is
   * returned also when traffic stops. 0 disables the timer (sweeps then happen only lazily).
   * Default 60 s.
   */
  sweepIntervalMs?: number;
}

/** Lazy sweeps never run more often than once per this many operations. */
const MIN_OPS_BETWEEN_SWEEPS = 1024;

/**
 * Limits kept in this process: the embedded default for a single instance.
 *
 * Memory bound: a full bucket is equivalent to an absent one (new buckets start full), and a
 * bucket is full again at most `windowMs` after its last use (longer only while in debt), so
 * dropping full buckets loses nothing. A sweep drops them together with expired leases; it runs
 * lazily once the operations since the last sweep reach max(1024, entries kept by that sweep),
 * which keeps the sweep's cost O(1) per operation, and on an unref'd timer. Between sweeps the
 * maps hold at most about 2 × (scopes used within their window, plus those in debt or holding
 * leases) + 1024 entries, however many distinct scopes have ever been seen.
 * Period totals keep one entry per scope (a new period replaces the old one) and are not
 * swept: dropping one would lose counts that storage may not have yet, and their scopes are
 * keys and projects, whose number storage already bounds.
 */
export class MemoryLimitStore implements LimitStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly leases = new Map<string, Map<string, number>>();
  private readonly totals = new Map<string, PeriodTotal>();
  private opsSinceSweep = 0;
  private sweepAfterOps = MIN_OPS_BETWEEN_SWEEPS;
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly now: () => number = Date.now,
    options: MemoryLimitStoreOptions = {},
  ) {
    const interval = options.sweepIntervalMs ?? 60_000;
    if (interval > 0) {
      this.timer = setInterval(() => this.sweep(), interval);
      this.timer.unref();
    }
  }

  /** Entries currently held (for tests and metrics). */
  get size(): { buckets: number; leaseScopes: number; totals: number } {
    return { buckets: this.buckets.size, leaseScopes: this.leases.size, totals: this.totals.size };
  }

  /** Synchronous throughout: the claims are taken (or rolled back) with nothing else in between. */
  claimAll(claims: readonly LimitClaim[]): Promise<ClaimOutcome> {
    try {
      checkClaims(claims);
      const results: (BucketResult | boolean)[] = [];
      for (const claim of claims) {
        const result =
          claim.kind === "bucket"
            ? this.takeNow(claim.scope, claim.capacity, claim.windowMs, claim.cost)
            : this.acquireNow(claim.scope, claim.max, claim.leaseId, claim.ttlMs);
        results.push(result);
        if (result === false || (result !== true && !result.allowed)) {
          this.giveBack(claims, results.length - 1);
          return Promise.resolve({ allowed: false, results });
        }
      }
      return Promise.resolve({ allowed: true, results });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  settleAll(settlements: readonly LimitSettlement[]): Promise<void> {
    try {
      checkSettlements(settlements);
      for (const settlement of settlements) {
        if (settlement.kind === "bucket") {
          const { scope, capacity, windowMs, units } = settlement;
          this.adjustNow(scope, capacity, windowMs, units);
        } else if (settlement.kind === "lease") this.releaseNow(settlement.scope, settlement.leaseId);
        else this.addToTotalNow(settlement.scope, settlement.periodKey, settlement.amount);
      }
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Undoes the first `count` claims, all taken. */
  private giveBack(claims: readonly LimitClaim[], count: number): void {
    for (let i = 0; i < count; i++) {
      const claim = claims[i] as LimitClaim;
      if (claim.kind === "bucket") this.adjustNow(claim.scope, claim.capacity, claim.windowMs, claim.cost);
      else this.releaseNow(claim.scope, claim.leaseId);
    }
  }

  private takeNow(scope: string, capacity: number, windowMs: number, cost: number): BucketResult {
    checkTakeArgs(capacity, windowMs, cost);
    const now = this.now();
    this.countOp();
    let bucket = this.buckets.get(scope);
    let tokens = bucket ? refilled(bucket, capacity, windowMs, now) : capacity;
    const allowed = cost <= capacity && tokens >= cost;
    if (allowed && cost !== 0) {
      tokens -= cost;
      if (bucket) {
        // A clock stepping back must not make the next refill count the same time twice.
        const at = Math.max(bucket.updatedAt, now);
        bucket.tokens = tokens;
        bucket.updatedAt = at;
        bucket.fullAt = fullAt(tokens, capacity, windowMs, at);
      } else {
        bucket = { tokens, updatedAt: now, fullAt: fullAt(tokens, capacity, windowMs, now) };
        this.buckets.set(scope, bucket);
      }
    }
    return bucketResult(allowed, tokens, capacity, windowMs, cost);
  }

  private adjustNow(scope: string, capacity: number, windowMs: number, units: number): void {
    checkBucketArgs(capacity, windowMs, units);
    const now = this.now();
    this.countOp();
    const bucket = this.buckets.get(scope);
    const tokens = Math.min(
      capacity,
      (bucket ? refilled(bucket, capacity, windowMs, now) : capacity) + units,
    );
    if (tokens >= capacity) {
      this.buckets.delete(scope);
    } else if (bucket) {
      const at = Math.max(bucket.updatedAt, now);
      bucket.tokens = tokens;
      bucket.updatedAt = at;
      bucket.fullAt = fullAt(tokens, capacity, windowMs, at);
    } else {
      this.buckets.set(scope, { tokens, updatedAt: now, fullAt: fullAt(tokens, capacity, windowMs, now) });
    }
  }

  /** As a claim of one unit, without taking: `allowed` says whether one unit is available. */
  peek(scope: string, capacity: number, windowMs: number): Promise<BucketResult> {
    try {
      checkBucketArgs(capacity, windowMs, 0);
      const bucket = this.buckets.get(scope);
      const tokens = bucket ? refilled(bucket, capacity, windowMs, this.now()) : capacity;
      return Promise.resolve(bucketResult(tokens >= 1 && capacity >= 1, tokens, capacity, windowMs, 1));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Holding `leaseId` already renews it (and succeeds) rather than taking a second place. */
  private acquireNow(scope: string, max: number, leaseId: string, ttlMs: number): boolean {
    const now = this.now();
    this.countOp();
    let held = this.leases.get(scope);
    if (!held) {
      if (max < 1) return false;
      held = new Map();
      this.leases.set(scope, held);
    } else if (held.size >= max) {
      const mine = held.get(leaseId);
      if (mine === undefined || mine <= now) {
        for (const [id, expiresAt] of held) if (expiresAt <= now) held.delete(id);
        if (held.size >= max) return false;
      }
    }
    held.set(leaseId, now + ttlMs);
    return true;
  }

  private releaseNow(scope: string, leaseId: string): void {
    const held = this.leases.get(scope);
    if (held?.delete(leaseId) && held.size === 0) this.leases.delete(scope);
  }

  private addToTotalNow(scope: string, periodKey: string, amount: number): number {
    const entry = this.totals.get(scope);
    if (entry && entry.periodKey === periodKey) {
      entry.total += amount;
      return entry.total;
    }
    if (entry) {
      entry.periodKey = periodKey;
      entry.total = amount;
    } else {
      this.totals.set(scope, { periodKey, total: amount });
    }
    return amount;
  }

  getTotals(scopes: readonly string[], periodKey: string): Promise<(number | undefined)[]> {
    return Promise.resolve(
      scopes.map((scope) => {
        const entry = this.totals.get(scope);
        return entry && entry.periodKey === periodKey ? entry.total : undefined;
      }),
    );
  }

  seedTotal(scope: string, periodKey: string, value: number): Promise<number> {
    const entry = this.totals.get(scope);
    if (entry && entry.periodKey === periodKey) return Promise.resolve(entry.total);
    this.totals.set(scope, { periodKey, total: value });
    return Promise.resolve(value);
  }

  close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    return Promise.resolve();
  }

  /** Drops full buckets, expired leases and emptied lease scopes. */
  sweep(): void {
    const now = this.now();
    for (const [scope, bucket] of this.buckets) if (bucket.fullAt <= now) this.buckets.delete(scope);
    for (const [scope, held] of this.leases) {
      for (const [id, expiresAt] of held) if (expiresAt <= now) held.delete(id);
      if (held.size === 0) this.leases.delete(scope);
    }
    this.opsSinceSweep = 0;
    this.sweepAfterOps = Math.max(MIN_OPS_BETWEEN_SWEEPS, this.buckets.size + this.leases.size);
  }

  private countOp(): void {
    if (++this.opsSinceSweep >= this.sweepAfterOps) this.sweep();
  }
}

/** The bucket's level at `now`; does not write (peek relies on that). */
function refilled(bucket: Bucket, capacity: number, windowMs: number, now: number): number {
  const elapsed = now - bucket.updatedAt;
  const tokens = elapsed > 0 ? bucket.tokens + (elapsed * capacity) / windowMs : bucket.tokens;
  // Also caps a bucket whose capacity was lowered since it was last used.
  return Math.min(tokens, capacity);
}

function fullAt(tokens: number, capacity: number, windowMs: number, now: number): number {
  return now + ((capacity - tokens) * windowMs) / capacity;
}
