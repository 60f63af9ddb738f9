import { Redis, type RedisOptions } from "ioredis";
import type { BucketResult, ClaimOutcome, LimitClaim, LimitStore } from "./limit-store.js";
import { bucketResult, checkBucketArgs, checkTakeArgs } from "./memory-limit-store.js";

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

const TAKE = `${PRELUDE}
local capacity, window, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, at = level(KEYS[1], capacity, window, now_ms())
local allowed = 0
if cost <= capacity and tokens >= cost then
  allowed = 1
  if cost ~= 0 then
    tokens = tokens - cost
    save(KEYS[1], tokens, at, capacity, window)
  end
end
return {allowed, num(tokens)}
`;

const PEEK = `${PRELUDE}
local capacity, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = level(KEYS[1], capacity, window, now_ms())
return num(tokens)
`;

const ADJUST = `${PRELUDE}
local capacity, window, units = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, at = level(KEYS[1], capacity, window, now_ms())
tokens = math.min(capacity, tokens + units)
save(KEYS[1], tokens, at, capacity, window)
return 1
`;

// A sorted set of lease id -> expiry (server ms). Holding the lease already renews it.
const ACQUIRE = `${PRELUDE}
local max, lease, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local mine = tonumber(redis.call('ZSCORE', KEYS[1], lease))
if mine == nil or mine <= now then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', num(now))
  if redis.call('ZCARD', KEYS[1]) >= max then return 0 end
end
redis.call('ZADD', KEYS[1], num(now + ttl), lease)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], math.ceil(ttl)) end
return 1
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

const ADD_TOTAL = `
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return total
`;

const SEED_TOTAL = `
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
return redis.call('GET', KEYS[1])
`;

/** The commands `defineCommand` adds; ioredis sends them by EVALSHA (EVAL once per connection). */
interface LimitScripts {
  sbLimitTake(key: string, capacity: number, windowMs: number, cost: number): Promise<[number, string]>;
  sbLimitPeek(key: string, capacity: number, windowMs: number): Promise<string>;
  sbLimitAdjust(key: string, capacity: number, windowMs: number, units: number): Promise<number>;
  sbLimitAcquire(key: string, max: number, leaseId: string, ttlMs: number): Promise<number>;
  sbLimitClaim(...keysThenArgs: (string | number)[]): Promise<[number, [number, string][]]>;
  sbLimitAddTotal(key: string, amount: number, ttlSeconds: number): Promise<string>;
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
    define("sbLimitTake", 1, TAKE);
    define("sbLimitPeek", 1, PEEK);
    define("sbLimitAdjust", 1, ADJUST);
    define("sbLimitAcquire", 1, ACQUIRE);
    this.client.defineCommand("sbLimitClaim", { lua: CLAIM });
    define("sbLimitAddTotal", 1, ADD_TOTAL);
    define("sbLimitSeedTotal", 1, SEED_TOTAL);
    this.scripts = this.client as unknown as LimitScripts;
  }

  async take(scope: string, capacity: number, windowMs: number, cost: number): Promise<BucketResult> {
    checkTakeArgs(capacity, windowMs, cost);
    const [allowed, tokens] = await this.run(() =>
      this.scripts.sbLimitTake(this.bucketKey(scope), capacity, windowMs, cost),
    );
    return bucketResult(allowed === 1, Number(tokens), capacity, windowMs, cost);
  }

  async adjust(scope: string, capacity: number, windowMs: number, units: number): Promise<void> {
    checkBucketArgs(capacity, windowMs, units);
    await this.run(() => this.scripts.sbLimitAdjust(this.bucketKey(scope), capacity, windowMs, units));
  }

  /** As `take` with a cost of 1, without taking: `allowed` says whether one unit is available. */
  async peek(scope: string, capacity: number, windowMs: number): Promise<BucketResult> {
    checkBucketArgs(capacity, windowMs, 0);
    const tokens = Number(
      await this.run(() => this.scripts.sbLimitPeek(this.bucketKey(scope), capacity, windowMs)),
    );
    return bucketResult(tokens >= 1 && capacity >= 1, tokens, capacity, windowMs, 1);
  }

  /** Holding `leaseId` already renews it (and succeeds) rather than taking a second place. */
  async acquireConcurrency(scope: string, max: number, leaseId: string, ttlMs: number): Promise<boolean> {
    const ok = await this.run(() => this.scripts.sbLimitAcquire(this.leaseKey(scope), max, leaseId, ttlMs));
    return ok === 1;
  }

  /**
   * One script over every claim's key: a standalone Redis (or keys of one cluster slot), as the
   * client this store is given is.
   */
  async claimAll(claims: readonly LimitClaim[]): Promise<ClaimOutcome> {
    if (claims.length === 0) return { allowed: true, results: [] };
    const keys: string[] = [];
    const args: (string | number)[] = [];
    for (const claim of claims) {
      if (claim.kind === "bucket") {
        checkTakeArgs(claim.capacity, claim.windowMs, claim.cost);
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

  async releaseConcurrency(scope: string, leaseId: string): Promise<void> {
    // One command is already atomic; no script needed.
    await this.run(() => this.client.zrem(this.leaseKey(scope), leaseId));
  }

  async addToTotal(scope: string, periodKey: string, amount: number): Promise<number> {
    if (!Number.isFinite(amount)) throw new RangeError(`amount must be finite, got ${amount}`);
    const total = await this.run(() =>
      this.scripts.sbLimitAddTotal(this.totalKey(scope, periodKey), amount, TOTAL_TTL_SECONDS),
    );
    return Number(total);
  }

  async getTotal(scope: string, periodKey: string): Promise<number | undefined> {
    const total = await this.run(() => this.client.get(this.totalKey(scope, periodKey)));
    return total === null ? undefined : Number(total);
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
