import { Redis, type RedisOptions } from "ioredis";
import type { BucketResult, ClaimOutcome, LimitClaim, LimitSettlement, LimitStore } from "./limit-store.js";
import { bucketResult, checkBucketArgs, checkClaims, checkSettlements } from "./memory-limit-store.js";

/**
 * Connection options for a limit store: a dead or hung Redis must fail a request within about
 * a second instead of queueing it, so the caller can fail open or closed.
 */
export const FAIL_FAST_REDIS_OPTIONS = {
  lazyConnect: false,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  connectTimeout: 1000,
  commandTimeout: 1000,
} satisfies RedisOptions;

export interface RedisLimitStoreOptions {
  /** Prefix of every key this store writes. Default "sb:". */
  prefix?: string;
  /** How long an operation waits for a connection still being opened. Default 1000 ms. */
  connectWaitMs?: number;
}

/** Period totals live about 40 days: past a monthly period, they are only history. */
const TOTAL_TTL_SECONDS = 40 * 24 * 3600;

// Every script reads the Redis server's clock, so instances with skewed clocks agree. Numbers
// go back to Redis as %.17g strings: Lua's default %.14g would round a millisecond timestamp
// to tens of milliseconds.
const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function num(x) return string.format('%.17g', x) end
-- The bucket's level now, and the time it is valid from (never earlier than its last write).
local function level(key, capacity, window, now)
  local s = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(s[1]), tonumber(s[2])
  if tokens == nil or ts == nil then return capacity, now end
  if now > ts then tokens = tokens + (now - ts) * capacity / window else now = ts end
  if tokens > capacity then tokens = capacity end
  return tokens, now
end
-- A full bucket is the same as no bucket, so it is deleted; any other expires once it is full
-- again (plus a window of slack), which also keeps debt until it is paid off.
local function save(key, tokens, at, capacity, window)
  if tokens >= capacity then
    redis.call('DEL', key)
    return
  end
  redis.call('HSET', key, 'tokens', num(tokens), 'ts', num(at))
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens) * window / capacity + window))
end
`;

const PEEK = `${PRELUDE}
local capacity, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = level(KEYS[1], capacity, window, now_ms())
return num(tokens)
`;

// Every claim or none. KEYS: one per claim; ARGV: four per claim, 'b' capacity window cost (a
// bucket) or 'l' max lease ttl (a lease). Every claim is looked at before anything is written,
// on one clock reading; the first refused one ends the look. Reply: {taken (1/0), {per claim as
// looked at: {taken, level ('' for a lease)}}}.
const CLAIM = `${PRELUDE}
local now = now_ms()
local looked = {}
local plans = {}
for i = 1, #KEYS do
  local at = (i - 1) * 4
  if ARGV[at + 1] == 'b' then
    local capacity, window, cost = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
    local tokens, ts = level(KEYS[i], capacity, window, now)
    if cost > capacity or tokens < cost then
      looked[i] = {0, num(tokens)}
      return {0, looked}
    end
    plans[i] = {tokens - cost, ts, capacity, window, cost}
    looked[i] = {1, num(tokens - cost)}
  else
    local max, lease = tonumber(ARGV[at + 2]), ARGV[at + 3]
    local mine = tonumber(redis.call('ZSCORE', KEYS[i], lease))
    if mine == nil or mine <= now then
      -- Expired leases go whatever the outcome: they hold no place.
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', num(now))
      if redis.call('ZCARD', KEYS[i]) >= max then
        looked[i] = {0, ''}
        return {0, looked}
      end
    end
    looked[i] = {1, ''}
  end
end
for i = 1, #KEYS do
  local plan = plans[i]
  if plan then
    if plan[5] ~= 0 then save(KEYS[i], plan[1], plan[2], plan[3], plan[4]) end
  else
    local at = (i - 1) * 4
    local lease, ttl = ARGV[at + 3], tonumber(ARGV[at + 4])
    redis.call('ZADD', KEYS[i], num(now + ttl), lease)
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], math.ceil(ttl)) end
  end
end
return {1, looked}
`;

// KEYS: one per settlement; ARGV: the total keys' ttl, then four per settlement: 'b' capacity
// window units (a bucket's refund or charge), 'l' lease (a lease given up), 't' amount (added to
// a period total), the short ones padded with ''.
const SETTLE = `${PRELUDE}
local now = now_ms()
local total_ttl = ARGV[1]
for i = 1, #KEYS do
  local at = 1 + (i - 1) * 4
  local kind = ARGV[at + 1]
  if kind == 'b' then
    local capacity, window, units = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
    local tokens, ts = level(KEYS[i], capacity, window, now)
    save(KEYS[i], math.min(capacity, tokens + units), ts, capacity, window)
  elseif kind == 'l' then
    redis.call('ZREM', KEYS[i], ARGV[at + 2])
  else
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[at + 2])
    redis.call('EXPIRE', KEYS[i], total_ttl)
  end
end
return 1
`;

const SEED_TOTAL = `
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
return redis.call('GET', KEYS[1])
`;

/** The commands `defineCommand` adds; ioredis sends them by EVALSHA (EVAL once per connection). */
interface LimitScripts {
  sbLimitPeek(key: string, capacity: number, windowMs: number): Promise<string>;
  sbLimitClaim(...keysThenArgs: (string | number)[]): Promise<[number, [number, string][]]>;
  sbLimitSettle(...keysThenArgs: (string | number)[]): Promise<number>;
  sbLimitSeedTotal(key: string, value: number, ttlSeconds: number): Promise<string>;
}

/**
 * Limits kept in Redis, shared by every instance using the same prefix. Each operation is one
 * atomic script (or one command) and uses the Redis server's clock.
 *
 * When Redis cannot be reached, operations reject promptly with an Error whose message starts
 * "Redis is unreachable"; whether to fail open or closed is the caller's decision.
 */
export class RedisLimitStore implements LimitStore {
  private readonly client: Redis;
  private readonly scripts: LimitScripts;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  private readonly connectWaitMs: number;
  private readonly where: string;
  private lastError: Error | undefined;
  private opening: Promise<void> | undefined;

  /**
   * `connection` is a Redis URL (the store opens and closes its own connection with
   * FAIL_FAST_REDIS_OPTIONS) or an ioredis client, which the caller owns and should configure
   * with those options.
   */
  constructor(connection: Redis | string, options: RedisLimitStoreOptions = {}) {
    this.prefix = options.prefix ?? "sb:";
    this.connectWaitMs = options.connectWaitMs ?? 1000;
    if (typeof connection === "string") {
      this.client = new Redis(connection, FAIL_FAST_REDIS_OPTIONS);
      this.ownsClient = true;
      this.where = redactUrl(connection);
      // Without a listener ioredis prints every failed reconnect; the error surfaces in operations.
      this.client.on("error", (err: Error) => {
        this.lastError = err;
      });
    } else {
      this.client = connection;
      this.ownsClient = false;
      this.where = `${connection.options.host ?? "localhost"}:${connection.options.port ?? 6379}`;
    }
    this.client.on("ready", () => {
      this.lastError = undefined;
    });
    const define = (name: keyof LimitScripts, numberOfKeys: number, lua: string) =>
      this.client.defineCommand(name, { numberOfKeys, lua });
    define("sbLimitPeek", 1, PEEK);
    // Claims and settlements name as many keys as they have entries: the count goes first.
    this.client.defineCommand("sbLimitClaim", { lua: CLAIM });
    this.client.defineCommand("sbLimitSettle", { lua: SETTLE });
    define("sbLimitSeedTotal", 1, SEED_TOTAL);
    this.scripts = this.client as unknown as LimitScripts;
  }

  /** As a claim of one unit, without taking: `allowed` says whether one unit is available. */
  async peek(scope: string, capacity: number, windowMs: number): Promise<BucketResult> {
    checkBucketArgs(capacity, windowMs, 0);
    const tokens = Number(
      await this.run(() => this.scripts.sbLimitPeek(this.bucketKey(scope), capacity, windowMs)),
    );
    return bucketResult(tokens >= 1 && capacity >= 1, tokens, capacity, windowMs, 1);
  }

  /**
   * One script over every claim's key: a standalone Redis (or keys of one cluster slot), as the
   * client this store is given is.
   */
  async claimAll(claims: readonly LimitClaim[]): Promise<ClaimOutcome> {
    if (claims.length === 0) return { allowed: true, results: [] };
    checkClaims(claims);
    const keys: string[] = [];
    const args: (string | number)[] = [];
    for (const claim of claims) {
      if (claim.kind === "bucket") {
        keys.push(this.bucketKey(claim.scope));
        args.push("b", claim.capacity, claim.windowMs, claim.cost);
      } else {
        keys.push(this.leaseKey(claim.scope));
        args.push("l", claim.max, claim.leaseId, claim.ttlMs);
      }
    }
    const [taken, looked] = await this.run(() => this.scripts.sbLimitClaim(keys.length, ...keys, ...args));
    const results = looked.map(([ok, level], i): BucketResult | boolean => {
      const claim = claims[i] as LimitClaim;
      if (claim.kind === "lease") return ok === 1;
      return bucketResult(ok === 1, Number(level), claim.capacity, claim.windowMs, claim.cost);
    });
    return { allowed: taken === 1, results };
  }

  async settleAll(settlements: readonly LimitSettlement[]): Promise<void> {
    if (settlements.length === 0) return;
    checkSettlements(settlements);
    const keys: string[] = [];
    const args: (string | number)[] = [TOTAL_TTL_SECONDS];
    for (const settlement of settlements) {
      if (settlement.kind === "bucket") {
        keys.push(this.bucketKey(settlement.scope));
        args.push("b", settlement.capacity, settlement.windowMs, settlement.units);
      } else if (settlement.kind === "lease") {
        keys.push(this.leaseKey(settlement.scope));
        args.push("l", settlement.leaseId, "", "");
      } else {
        keys.push(this.totalKey(settlement.scope, settlement.periodKey));
        args.push("t", settlement.amount, "", "");
      }
    }
    await this.run(() => this.scripts.sbLimitSettle(keys.length, ...keys, ...args));
  }

  async getTotals(scopes: readonly string[], periodKey: string): Promise<(number | undefined)[]> {
    if (scopes.length === 0) return [];
    const totals = await this.run(() =>
      this.client.mget(scopes.map((scope) => this.totalKey(scope, periodKey))),
    );
    return totals.map((total) => (total === null ? undefined : Number(total)));
  }

  async seedTotal(scope: string, periodKey: string, value: number): Promise<number> {
    if (!Number.isFinite(value)) throw new RangeError(`value must be finite, got ${value}`);
    const total = await this.run(() =>
      this.scripts.sbLimitSeedTotal(this.totalKey(scope, periodKey), value, TOTAL_TTL_SECONDS),
    );
    return Number(total);
  }

  async close(): Promise<void> {
    if (!this.ownsClient) return;
    if (this.client.status === "ready") {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }

  private bucketKey(scope: string): string {
    return `${this.prefix}bucket:${scope}`;
  }

  private leaseKey(scope: string): string {
    return `${this.prefix}conc:${scope}`;
  }

  /** The period is encoded so that the last ':' always separates it from the scope. */
  private totalKey(scope: string, periodKey: string): string {
    return `${this.prefix}total:${scope}:${encodeURIComponent(periodKey)}`;
  }

  private async run<T>(operation: () => Promise<T>): Promise<T> {
    await this.connected();
    try {
      return await operation();
    } catch (err) {
      throw this.describe(err);
    }
  }

  /** Waits (briefly) only for a connection being opened; a lost one fails at once. */
  private async connected(): Promise<void> {
    const status = this.client.status;
    if (status === "ready") return;
    if (status === "wait") {
      // A lazyConnect client given to us; its outcome arrives through the wait below.
      this.client.connect().catch(() => {});
    } else if (status !== "connecting" && status !== "connect") {
      throw this.unreachable(this.lastError);
    }
    // One wait shared by every caller, rather than three listeners per pending operation.
    this.opening ??= new Promise<void>((resolve, reject) => {
      const done = (err?: unknown) => {
        clearTimeout(timer);
        this.client.off("ready", onReady);
        this.client.off("error", onError);
        this.client.off("close", onClose);
        if (err === undefined) resolve();
        else reject(this.unreachable(err));
      };
      const onReady = () => done();
      const onError = (err: unknown) => done(err);
      const onClose = () => done(this.lastError ?? new Error("connection closed"));
      const timer = setTimeout(
        () => done(new Error(`no connection within ${this.connectWaitMs} ms`)),
        this.connectWaitMs,
      );
      this.client.once("ready", onReady);
      this.client.once("error", onError);
      this.client.once("close", onClose);
    }).finally(() => {
      this.opening = undefined;
    });
    await this.opening;
  }

  private describe(err: unknown): Error {
    // A reply error means Redis answered: a bug in a script or a wrong-typed key, not an outage.
    if (err instanceof Error && err.name === "ReplyError") {
      return new Error(`Redis limit store command failed: ${err.message}`, { cause: err });
    }
    return this.unreachable(err);
  }

  private unreachable(err: unknown): Error {
    const reason = err instanceof Error ? err.message : err === undefined ? this.client.status : String(err);
    return new Error(`Redis is unreachable at ${this.where} (${reason})`, { cause: err });
  }
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || "6379"}`;
  } catch {
    return "the configured URL";
  }
}
