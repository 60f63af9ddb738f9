import { createServer } from "node:net";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BucketResult, LimitStore } from "../../src/limits/limit-store.js";
import { MemoryLimitStore } from "../../src/limits/memory-limit-store.js";
import { RedisLimitStore } from "../../src/limits/redis-limit-store.js";
import { countRedisKeys, deleteRedisKeys, hasRedis, REDIS_URL, redisTestPrefix } from "../helpers/redis.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

interface StoreVariant {
  name: string;
  open(): LimitStore;
  /**
   * Moves the store's clock forward (memory store). Undefined where time is real (Redis, which
   * uses its own server clock): tests then poll, bounded, until the expected state arrives.
   */
  advance?: (ms: number) => void;
  /** A lease ttl short enough to wait out for real, long enough to outlive a few round trips. */
  shortTtlMs: number;
  cleanup(): Promise<void>;
}

function memoryVariant(): StoreVariant {
  let clock = Date.UTC(2026, 10, 20, 12, 0, 0);
  return {
    name: "memory",
    open: () => new MemoryLimitStore(() => clock, { sweepIntervalMs: 0 }),
    advance: (ms) => {
      clock += ms;
    },
    shortTtlMs: 1000,
    cleanup: async () => {},
  };
}

function redisVariant(): StoreVariant {
  const prefix = redisTestPrefix();
  return {
    name: "redis",
    open: () => new RedisLimitStore(REDIS_URL, { prefix }),
    shortTtlMs: 150,
    cleanup: () => deleteRedisKeys(prefix),
  };
}

const variants = (await hasRedis()) ? [memoryVariant(), redisVariant()] : [memoryVariant()];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One bucket claimed alone: what the enforcer's claims do for each limit. */
async function take(store: LimitStore, scope: string, capacity: number, windowMs: number, cost: number) {
  const outcome = await store.claimAll([{ kind: "bucket", scope, capacity, windowMs, cost }]);
  return outcome.results[0] as BucketResult;
}

function adjust(store: LimitStore, scope: string, capacity: number, windowMs: number, units: number) {
  return store.settleAll([{ kind: "bucket", scope, capacity, windowMs, units }]);
}

async function acquire(store: LimitStore, scope: string, max: number, leaseId: string, ttlMs: number) {
  return (await store.claimAll([{ kind: "lease", scope, max, leaseId, ttlMs }])).allowed;
}

function release(store: LimitStore, scope: string, leaseId: string) {
  return store.settleAll([{ kind: "lease", scope, leaseId }]);
}

async function getTotal(store: LimitStore, scope: string, periodKey: string) {
  return (await store.getTotals([scope], periodKey))[0];
}

/** Adds to a period total, and reads the total back. */
async function addToTotal(store: LimitStore, scope: string, periodKey: string, amount: number) {
  await store.settleAll([{ kind: "total", scope, periodKey, amount }]);
  return getTotal(store, scope, periodKey);
}

describe.each(variants)("limit store on $name", (variant: StoreVariant) => {
  let store: LimitStore;
  let n = 0;
  /** A scope no other test touches. */
  const scope = () => `key:test_${++n}`;

  beforeAll(() => {
    store = variant.open();
  });
  afterAll(async () => {
    await store?.close();
    await variant.cleanup();
  });

  /** After `ms` have passed (simulated or real), `check` holds; real time is polled, bounded. */
  async function holdsAfter(ms: number, check: () => Promise<boolean>): Promise<void> {
    if (variant.advance) {
      variant.advance(ms);
      expect(await check()).toBe(true);
      return;
    }
    const started = Date.now();
    while (!(await check())) {
      if (Date.now() - started > ms * 10 + 2000)
        throw new Error(`still not true ${Date.now() - started} ms later`);
      await sleep(10);
    }
  }

  it("starts a bucket full, takes until empty, then refuses with the wait for one unit", async () => {
    const s = scope();
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const result = await take(store, s, 5, MINUTE, 1);
      expect(result.allowed).toBe(true);
      expect(result.retryAfterMs).toBe(0);
      remaining.push(result.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = await take(store, s, 5, MINUTE, 1);
    expect(refused.allowed).toBe(false);
    expect(refused.remaining).toBe(0);
    // One unit refills every 12 s; a little of that may already have passed on a real clock.
    expect(refused.retryAfterMs).toBeGreaterThan(11_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(12_000);
    expect(refused.resetMs).toBeGreaterThan(59_000);
    expect(refused.resetMs).toBeLessThanOrEqual(MINUTE);
  });

  it("makes a cost of several units wait until that many are back", async () => {
    const s = scope();
    expect(await take(store, s, 5, MINUTE, 3)).toMatchObject({ allowed: true, remaining: 2 });
    const refused = await take(store, s, 5, MINUTE, 3);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(11_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(12_000);
    // A refused take takes nothing.
    expect(await take(store, s, 5, MINUTE, 2)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it("refills evenly over the window", async () => {
    const s = scope();
    // Capacity 2 over 200 ms: one unit every 100 ms.
    expect((await take(store, s, 2, 200, 2)).allowed).toBe(true);
    expect((await take(store, s, 2, 200, 1)).allowed).toBe(false);
    await holdsAfter(100, async () => (await take(store, s, 2, 200, 1)).allowed);
    await holdsAfter(200, async () => (await store.peek(s, 2, 200)).remaining === 2);
  });

  it("refuses a cost above capacity for good, taking nothing", async () => {
    const s = scope();
    const result = await take(store, s, 5, MINUTE, 6);
    expect(result).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: Number.POSITIVE_INFINITY });
    expect((await store.peek(s, 5, MINUTE)).remaining).toBe(5);
  });

  it("refunds up to capacity and charges into debt with adjust", async () => {
    const s = scope();
    expect((await take(store, s, 5, MINUTE, 3)).remaining).toBe(2);
    await adjust(store, s, 5, MINUTE, 2);
    expect((await store.peek(s, 5, MINUTE)).remaining).toBe(4);
    await adjust(store, s, 5, MINUTE, 100);
    expect(await store.peek(s, 5, MINUTE)).toMatchObject({ allowed: true, remaining: 5, resetMs: 0 });

    await adjust(store, s, 5, MINUTE, -10);
    const inDebt = await store.peek(s, 5, MINUTE);
    expect(inDebt).toMatchObject({ allowed: false, remaining: 0 });
    // -5 units: the bucket is full again after 10 units' worth of refill (2 minutes).
    expect(inDebt.resetMs).toBeGreaterThan(119_000);
    expect(inDebt.resetMs).toBeLessThanOrEqual(120_000);
    const refused = await take(store, s, 5, MINUTE, 1);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(71_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(72_000);
  });

  it("charges a scope it has not seen from a full bucket", async () => {
    const s = scope();
    await adjust(store, s, 5, MINUTE, -2);
    expect((await store.peek(s, 5, MINUTE)).remaining).toBe(3);
  });

  it("peeks without changing the bucket", async () => {
    const fresh = scope();
    expect(await store.peek(fresh, 5, MINUTE)).toEqual({
      allowed: true,
      remaining: 5,
      resetMs: 0,
      retryAfterMs: 0,
    });
    expect((await take(store, fresh, 5, MINUTE, 1)).remaining).toBe(4);

    const s = scope();
    await take(store, s, 5, MINUTE, 2);
    for (let i = 0; i < 3; i++) expect((await store.peek(s, 5, MINUTE)).remaining).toBe(3);
    expect((await take(store, s, 5, MINUTE, 1)).remaining).toBe(2);

    const empty = scope();
    await take(store, empty, 5, MINUTE, 5);
    const peeked = await store.peek(empty, 5, MINUTE);
    expect(peeked).toMatchObject({ allowed: false, remaining: 0 });
    expect(peeked.retryAfterMs).toBeGreaterThan(11_000);
    expect((await take(store, empty, 5, MINUTE, 1)).allowed).toBe(false);
  });

  it("keeps scopes apart", async () => {
    const a = scope();
    const b = scope();
    await take(store, a, 5, MINUTE, 5);
    expect((await take(store, b, 5, MINUTE, 1)).remaining).toBe(4);
  });

  it("rejects a capacity or window that is not positive, and a negative cost", async () => {
    await expect(take(store, scope(), 0, MINUTE, 1)).rejects.toThrow(RangeError);
    await expect(store.peek(scope(), 5, 0)).rejects.toThrow(RangeError);
    await expect(adjust(store, scope(), 5, MINUTE, Number.NaN)).rejects.toThrow(RangeError);
    await expect(take(store, scope(), 5, MINUTE, -1)).rejects.toThrow(RangeError);
  });

  it("holds at most max concurrent leases, and a release frees a place", async () => {
    const s = scope();
    expect(await acquire(store, s, 2, "a", MINUTE)).toBe(true);
    expect(await acquire(store, s, 2, "b", MINUTE)).toBe(true);
    expect(await acquire(store, s, 2, "c", MINUTE)).toBe(false);
    // Acquiring a lease already held renews it instead of being refused.
    expect(await acquire(store, s, 2, "a", MINUTE)).toBe(true);
    await release(store, s, "a");
    expect(await acquire(store, s, 2, "c", MINUTE)).toBe(true);
    expect(await acquire(store, s, 2, "d", MINUTE)).toBe(false);
    // Releasing what is not held is harmless.
    await release(store, s, "nope");
    await release(store, scope(), "nope");
    expect(await acquire(store, s, 2, "d", MINUTE)).toBe(false);
  });

  it("frees the place of a lease that expired", async () => {
    const s = scope();
    const ttl = variant.shortTtlMs;
    expect(await acquire(store, s, 1, "crashed", ttl)).toBe(true);
    expect(await acquire(store, s, 1, "next", MINUTE)).toBe(false);
    await holdsAfter(ttl, () => acquire(store, s, 1, "next", MINUTE));
    expect(await acquire(store, s, 1, "third", MINUTE)).toBe(false);
  });

  it("takes every claim at once, in order, each reported as take and acquire report it", async () => {
    const [rpm, tpm, conc] = [scope(), scope(), scope()];
    const outcome = await store.claimAll([
      { kind: "bucket", scope: rpm, capacity: 5, windowMs: MINUTE, cost: 1 },
      { kind: "bucket", scope: tpm, capacity: 1000, windowMs: MINUTE, cost: 300 },
      { kind: "lease", scope: conc, max: 1, leaseId: "first", ttlMs: MINUTE },
    ]);
    expect(outcome.allowed).toBe(true);
    expect(outcome.results).toHaveLength(3);
    expect(outcome.results[0]).toMatchObject({ allowed: true, remaining: 4, retryAfterMs: 0 });
    expect(outcome.results[1]).toMatchObject({ allowed: true, remaining: 700 });
    expect(outcome.results[2]).toBe(true);
    expect((await store.peek(tpm, 1000, MINUTE)).remaining).toBe(700);
    expect(await acquire(store, conc, 1, "other", MINUTE)).toBe(false);
    expect(await store.claimAll([])).toEqual({ allowed: true, results: [] });
  });

  it("takes nothing when a claim is refused: the results stop at the refused one", async () => {
    const [rpm, tpm, conc] = [scope(), scope(), scope()];
    expect(await acquire(store, conc, 1, "holder", MINUTE)).toBe(true);
    const claims = (cost: number, leaseId: string) =>
      [
        { kind: "bucket", scope: rpm, capacity: 5, windowMs: MINUTE, cost: 1 },
        { kind: "bucket", scope: tpm, capacity: 1000, windowMs: MINUTE, cost },
        { kind: "lease", scope: conc, max: 1, leaseId, ttlMs: MINUTE },
      ] as const;
    // Refused by the lease, the last claim: both buckets are as they were.
    const byLease = await store.claimAll(claims(300, "second"));
    expect(byLease.allowed).toBe(false);
    expect(byLease.results).toHaveLength(3);
    expect(byLease.results[0]).toMatchObject({ allowed: true, remaining: 4 });
    expect(byLease.results[2]).toBe(false);
    expect((await store.peek(rpm, 5, MINUTE)).remaining).toBe(5);
    expect((await store.peek(tpm, 1000, MINUTE)).remaining).toBe(1000);

    // Refused by a bucket in the middle: the look ends there, and the lease is not taken either.
    await release(store, conc, "holder");
    const byBucket = await store.claimAll(claims(2000, "third"));
    expect(byBucket.allowed).toBe(false);
    expect(byBucket.results).toHaveLength(2);
    expect(byBucket.results[1]).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: Infinity });
    expect((await store.peek(rpm, 5, MINUTE)).remaining).toBe(5);
    expect(await acquire(store, conc, 1, "fourth", MINUTE)).toBe(true);
  });

  it("settles refunds, leases and totals in one call", async () => {
    const [tpm, conc, total] = [scope(), scope(), scope()];
    const outcome = await store.claimAll([
      { kind: "bucket", scope: tpm, capacity: 1000, windowMs: HOUR, cost: 600 },
      { kind: "lease", scope: conc, max: 1, leaseId: "request", ttlMs: MINUTE },
    ]);
    expect(outcome.allowed).toBe(true);
    await store.settleAll([
      // It used 100 of the 600 reserved.
      { kind: "bucket", scope: tpm, capacity: 1000, windowMs: HOUR, units: 500 },
      { kind: "lease", scope: conc, leaseId: "request" },
      { kind: "total", scope: total, periodKey: "2026-12", amount: 100 },
      { kind: "total", scope: total, periodKey: "2026-12", amount: 0.5 },
    ]);
    expect((await store.peek(tpm, 1000, HOUR)).remaining).toBe(900);
    expect(await acquire(store, conc, 1, "next", MINUTE)).toBe(true);
    expect(await getTotal(store, total, "2026-12")).toBe(100.5);
    await store.settleAll([]);
  });

  it("refuses a settlement with meaningless arithmetic before applying any", async () => {
    const total = scope();
    await expect(
      store.settleAll([
        { kind: "total", scope: total, periodKey: "2026-12", amount: 1 },
        { kind: "bucket", scope: scope(), capacity: 10, windowMs: MINUTE, units: Number.NaN },
      ]),
    ).rejects.toThrow(RangeError);
    await expect(
      store.settleAll([
        { kind: "total", scope: total, periodKey: "2026-12", amount: Number.POSITIVE_INFINITY },
      ]),
    ).rejects.toThrow(RangeError);
    expect(await getTotal(store, total, "2026-12")).toBeUndefined();
  });

  it("refuses claims with meaningless bucket arithmetic before taking any", async () => {
    const first = scope();
    await expect(
      store.claimAll([
        { kind: "bucket", scope: first, capacity: 5, windowMs: MINUTE, cost: 1 },
        { kind: "bucket", scope: scope(), capacity: 0, windowMs: MINUTE, cost: 1 },
      ]),
    ).rejects.toThrow(RangeError);
    expect((await store.peek(first, 5, MINUTE)).remaining).toBe(5);
  });

  it("adds up period totals and starts again in a new period", async () => {
    const s = scope();
    expect(await getTotal(store, s, "2026-11")).toBeUndefined();
    expect(await addToTotal(store, s, "2026-11", 1.5)).toBe(1.5);
    expect(await addToTotal(store, s, "2026-11", 2.25)).toBe(3.75);
    expect(await addToTotal(store, s, "2026-11", 0.1)).toBeCloseTo(3.85, 10);
    expect(await getTotal(store, s, "2026-11")).toBeCloseTo(3.85, 10);
    expect(await getTotal(store, scope(), "2026-11")).toBeUndefined();

    expect(await getTotal(store, s, "2026-12")).toBeUndefined();
    expect(await addToTotal(store, s, "2026-12", 1)).toBe(1);
    expect(await getTotal(store, s, "2026-12")).toBe(1);
  });

  it("reads several totals at once, in order, unseen ones undefined", async () => {
    const [seen, unseen, other] = [scope(), scope(), scope()];
    await addToTotal(store, seen, "2026-11", 4);
    await addToTotal(store, other, "2026-11", 0.25);
    expect(await store.getTotals([seen, unseen, other], "2026-11")).toEqual([4, undefined, 0.25]);
    expect(await store.getTotals([seen], "2026-10")).toEqual([undefined]);
    expect(await store.getTotals([], "2026-11")).toEqual([]);
  });

  it("seeds a period total only once", async () => {
    const s = scope();
    expect(await store.seedTotal(s, "2026-11", 10)).toBe(10);
    expect(await store.seedTotal(s, "2026-11", 99)).toBe(10);
    expect(await addToTotal(store, s, "2026-11", 1)).toBe(11);
    expect(await store.seedTotal(s, "2026-11", 99)).toBe(11);
    expect(await getTotal(store, s, "2026-11")).toBe(11);

    // What this store counted itself is not overwritten by a seed that arrives later.
    const counted = scope();
    await addToTotal(store, counted, "2026-11", 2);
    expect(await store.seedTotal(counted, "2026-11", 50)).toBe(2);
  });
});

describe.runIf(variants.length > 1)("redis limit store across instances", () => {
  const prefix = redisTestPrefix();
  let a: RedisLimitStore;
  let b: RedisLimitStore;
  let bClient: Redis;
  beforeAll(() => {
    // Two stores, two connections, one prefix: two server instances behind a load balancer.
    a = new RedisLimitStore(REDIS_URL, { prefix });
    bClient = new Redis(REDIS_URL);
    b = new RedisLimitStore(bClient, { prefix });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    // A store given a client leaves closing it to its owner.
    expect(bClient.status).toBe("ready");
    await bClient?.quit();
    await deleteRedisKeys(prefix);
  });

  it("shares one bucket: 10 concurrent takes against capacity 5 let exactly 5 through", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => take(i % 2 === 0 ? a : b, "key:shared", 5, MINUTE, 1)),
    );
    expect(results.filter((r) => r.allowed)).toHaveLength(5);
    expect((await b.peek("key:shared", 5, MINUTE)).remaining).toBe(0);
  });

  it("shares one concurrency limit across instances", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => acquire(i % 2 === 0 ? a : b, "key:conc", 5, `lease_${i}`, MINUTE)),
    );
    expect(results.filter(Boolean)).toHaveLength(5);
    const holder = results.findIndex(Boolean);
    await release(holder % 2 === 0 ? b : a, "key:conc", `lease_${holder}`);
    expect(await acquire(a, "key:conc", 5, "late", MINUTE)).toBe(true);
  });

  it("claims all or nothing across instances: 10 concurrent claims against a lease limit of 3", async () => {
    const claims = (i: number) =>
      [
        { kind: "bucket", scope: "key:claimed-rpm", capacity: 100, windowMs: HOUR, cost: 1 },
        { kind: "lease", scope: "key:claimed-conc", max: 3, leaseId: `lease_${i}`, ttlMs: MINUTE },
      ] as const;
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).claimAll(claims(i))),
    );
    expect(outcomes.filter((o) => o.allowed)).toHaveLength(3);
    // Only the three that were let in took from the bucket.
    // (A unit comes back every 36 s: none did meanwhile.)
    expect((await a.peek("key:claimed-rpm", 100, HOUR)).remaining).toBe(97);
  });

  it("shares period totals", async () => {
    await addToTotal(a, "project:p", "2026-11", 2);
    await addToTotal(b, "project:p", "2026-11", 3);
    expect(await getTotal(a, "project:p", "2026-11")).toBe(5);
    expect(await b.seedTotal("project:p", "2026-11", 100)).toBe(5);
  });

  it("leaves no key for a full bucket and lets the others expire", async () => {
    const own = redisTestPrefix();
    const store = new RedisLimitStore(REDIS_URL, { prefix: own });
    const probe = new Redis(REDIS_URL);
    try {
      await take(store, "key:x", 5, MINUTE, 2);
      const ttl = await probe.pttl(`${own}bucket:key:x`);
      // Full again after 2 units (24 s), plus one window of slack.
      expect(ttl).toBeGreaterThan(80_000);
      expect(ttl).toBeLessThanOrEqual(84_000);
      await adjust(store, "key:x", 5, MINUTE, 2);
      expect(await countRedisKeys(own)).toBe(0);

      await acquire(store, "key:x", 2, "l", 5000);
      expect(await probe.pttl(`${own}conc:key:x`)).toBeLessThanOrEqual(5000);
      await addToTotal(store, "key:x", "2026-11", 1);
      expect(await probe.ttl(`${own}total:key:x:2026-11`)).toBeGreaterThan(39 * 86_400);
    } finally {
      await store.close();
      probe.disconnect();
      await deleteRedisKeys(own);
    }
  });
});

describe("redis limit store without a Redis", () => {
  it("rejects quickly with a message that says Redis is unreachable", async () => {
    const port = await closedPort();
    const store = new RedisLimitStore(`redis://127.0.0.1:${port}`);
    try {
      const started = Date.now();
      await expect(take(store, "key:x", 5, MINUTE, 1)).rejects.toThrow(
        /Redis is unreachable at 127\.0\.0\.1:\d+/,
      );
      // Later calls, made while ioredis is reconnecting, fail at once too.
      await expect(acquire(store, "key:x", 1, "l", MINUTE)).rejects.toThrow(/Redis is unreachable/);
      await expect(addToTotal(store, "key:x", "2026-11", 1)).rejects.toThrow(/Redis is unreachable/);
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await store.close();
    }
  });
});

describe("memory limit store bounds", () => {
  it("drops buckets once they are full again, so distinct scopes do not accumulate", async () => {
    let clock = 0;
    const store = new MemoryLimitStore(() => clock, { sweepIntervalMs: 0 });
    let largest = 0;
    for (let i = 0; i < 200_000; i++) {
      // Each scope is used once; its bucket is full again 100 ms later.
      await take(store, `ip:${i}`, 10, 100, 1);
      clock += 1;
      largest = Math.max(largest, store.size.buckets);
    }
    // About 2 × (scopes active within a window) + the lazy sweep's minimum of 1024.
    expect(largest).toBeLessThan(1300);
    await store.close();
  });

  it("keeps what a sweep must not lose: buckets in debt, live leases, totals", async () => {
    let clock = 0;
    const store = new MemoryLimitStore(() => clock, { sweepIntervalMs: 0 });
    await take(store, "used", 5, 1000, 1);
    await adjust(store, "debt", 5, 1000, -20);
    await acquire(store, "live", 1, "l", 10_000);
    await acquire(store, "dead", 1, "l", 10);
    await addToTotal(store, "total", "2026-11", 3);
    clock += 1000;
    store.sweep();
    expect(store.size).toEqual({ buckets: 1, leaseScopes: 1, totals: 1 });
    expect((await store.peek("debt", 5, 1000)).allowed).toBe(false);
    expect(await acquire(store, "live", 1, "other", 10_000)).toBe(false);
    expect(await getTotal(store, "total", "2026-11")).toBe(3);
    await store.close();
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}
