import type { Redis } from "ioredis";
import type {
  Admission,
  Admitted,
  DeploymentSnapshot,
  DeploymentState,
  DeploymentStateSettings,
  DeploymentStateStore,
} from "./deployment-state.js";
import { MemoryDeploymentState } from "./memory-deployment-state.js";

// The rules of MemoryDeploymentState, as scripts over one hash per deployment (failures, opened,
// probe, and the rpm / tpm buckets rq, rq_at, tk, tk_at), each atomic and on the Redis server's
// clock so instances with skewed clocks agree. Numbers go back as %.17g strings: Lua's default
// %.14g would round a millisecond timestamp. Every reply ends with the failure streak and how long
// ago the circuit opened (-1: closed), which is how each instance keeps its picture current.
const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function num(x) return string.format('%.17g', x) end
local function level(l, at, cap, now)
  l, at = tonumber(l), tonumber(at)
  if l == nil or at == nil then return cap end
  if now > at then l = l + (now - at) * cap / 60000 end
  if l > cap then l = cap end
  return l
end
local function ago(opened, now)
  if opened == nil then return -1 end
  if now < opened then return 0 end
  return math.floor(now - opened)
end
`;

// ARGV: cooldown, probe ttl, rpm (0: none), tpm (0: none), tokens, key ttl, share of the caps (0-1].
// Reply: {admitted, probe (admitted) or capped (refused), failures, opened ago, the probe's hold}.
const ADMIT = `${PRELUDE}
local now = now_ms()
local s = redis.call('HMGET', KEYS[1], 'failures', 'opened', 'probe', 'rq', 'rq_at', 'tk', 'tk_at')
local failures, opened = tonumber(s[1]) or 0, tonumber(s[2])
local cooldown, probe_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, tpm, tokens, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local share = tonumber(ARGV[7]) or 1
local probe = 0
if opened ~= nil then
  if now - opened < cooldown then return {0, 0, failures, ago(opened, now)} end
  local probing = tonumber(s[3])
  if probing ~= nil and probing > now then return {0, 0, failures, ago(opened, now)} end
  probe = 1
end
local rq, tk
if rpm > 0 then
  rq = level(s[4], s[5], rpm, now)
  if rq - 1 < math.min(rpm * (1 - share), rpm - 1) then return {0, 1, failures, ago(opened, now)} end
end
if tpm > 0 then
  tk = level(s[6], s[7], tpm, now)
  local held = tpm * (1 - share)
  if tk - held < tokens and tk < tpm then return {0, 1, failures, ago(opened, now)} end
end
if rpm > 0 then redis.call('HSET', KEYS[1], 'rq', num(rq - 1), 'rq_at', num(now)) end
if tpm > 0 then redis.call('HSET', KEYS[1], 'tk', num(tk - tokens), 'tk_at', num(now)) end
local hold = ''
if probe == 1 then
  hold = num(now + probe_ttl)
  redis.call('HSET', KEYS[1], 'probe', hold)
end
if rpm > 0 or tpm > 0 or probe == 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, probe, failures, ago(opened, now), hold}
`;

// A probe's end frees the half-open circuit only while the hold is its own (ARGV[n]: '' for none).
const END_PROBE = `
local function end_probe(hold)
  if hold ~= '' and redis.call('HGET', KEYS[1], 'probe') == hold then redis.call('HDEL', KEYS[1], 'probe') end
end
`;

// ARGV: failures that open, the probe's hold ('' for none), key ttl. Reply: {failures, opened ago}.
const FAILED = `${PRELUDE}${END_PROBE}
local now = now_ms()
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
end_probe(ARGV[2])
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened'))
if opened ~= nil or failures >= tonumber(ARGV[1]) then
  opened = now
  redis.call('HSET', KEYS[1], 'opened', num(now))
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {failures, ago(opened, now)}
`;

// ARGV: tpm, tokens to give back (negative: to charge), key ttl.
const SETTLE = `${PRELUDE}
local now = now_ms()
local cap = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'tk', 'tk_at')
local tk = level(s[1], s[2], cap, now) + tonumber(ARGV[2])
if tk > cap then tk = cap end
redis.call('HSET', KEYS[1], 'tk', num(tk), 'tk_at', num(now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`;

// ARGV: the probe's hold.
const RELEASED = `${END_PROBE}
end_probe(ARGV[1])
return 1
`;

const READ = `${PRELUDE}
local s = redis.call('HMGET', KEYS[1], 'failures', 'opened')
return {tonumber(s[1]) or 0, ago(tonumber(s[2]), now_ms())}
`;

type Reply = [number, number];

interface RouterScripts {
  sbRouterAdmit(
    key: string,
    cooldownMs: number,
    probeTtlMs: number,
    rpm: number,
    tpm: number,
    tokens: number,
    ttlMs: number,
    share: number,
  ): Promise<[number, number, number, number, string]>;
  sbRouterFailed(key: string, failures: number, probeHold: string, ttlMs: number): Promise<Reply>;
  sbRouterReleased(key: string, probeHold: string): Promise<number>;
  sbRouterSettle(key: string, tpm: number, unused: number, ttlMs: number): Promise<number>;
  sbRouterRead(key: string): Promise<Reply>;
}

/**
 * A deployment's state lives this long after its last change; removed deployments' state goes
 * away, and a live one's streak outlasts any idle spell that matters.
 */
const KEY_TTL_MS = 24 * 3600 * 1000;

/** A picture older than this is refreshed (in the background) when someone looks at it. */
const SNAPSHOT_REFRESH_MS = 1000;

export interface RedisDeploymentStateOptions {
  /** Prefix of every key (the server's redis_prefix); the router's keys go under `<prefix>router:`. */
  prefix?: string;
  /** Close the client with the store. */
  closeClient?: boolean;
  /**
   * Redis could not answer (`err`), or answers again (undefined) after it could not. Meanwhile each
   * instance routes on its own state: a dead Redis must not stop traffic.
   */
  onAvailabilityChange?(err: Error | undefined): void;
  /** This process' clock, for the local fallback and for ageing the last known picture. */
  now?: () => number;
  /** How long an operation waits for a connection still being opened (start-up). Default 1000 ms. */
  connectWaitMs?: number;
}

/**
 * Deployment state shared through Redis by every instance using the same prefix: one open circuit,
 * one probe, one cap for all of them. When Redis fails, each deployment falls back to a state of
 * this instance's own until Redis answers again (an admission is reported to the store that made it).
 */
export class RedisDeploymentStateStore implements DeploymentStateStore {
  readonly shared = true;
  private readonly scripts: RouterScripts;
  private readonly prefix: string;
  private readonly now: () => number;
  private unavailable = false;
  /** One wait for the connection being opened, shared by every operation that arrives meanwhile. */
  private opening: Promise<void> | undefined;

  constructor(
    private readonly client: Redis,
    private readonly options: RedisDeploymentStateOptions = {},
  ) {
    this.prefix = `${options.prefix ?? "sb:"}router:`;
    this.now = options.now ?? Date.now;
    // Without a listener ioredis prints every failed reconnect; an outage is reported once, above.
    client.on("error", () => {});
    client.defineCommand("sbRouterAdmit", { numberOfKeys: 1, lua: ADMIT });
    client.defineCommand("sbRouterFailed", { numberOfKeys: 1, lua: FAILED });
    client.defineCommand("sbRouterReleased", { numberOfKeys: 1, lua: RELEASED });
    client.defineCommand("sbRouterSettle", { numberOfKeys: 1, lua: SETTLE });
    client.defineCommand("sbRouterRead", { numberOfKeys: 1, lua: READ });
    this.scripts = client as unknown as RouterScripts;
  }

  forDeployment(model: string, name: string, settings: DeploymentStateSettings): DeploymentState {
    // Encoded, so model "a:b" with deployment "c" and model "a" with deployment "b:c" stay apart.
    const key = `${this.prefix}${encodeURIComponent(model)}:${encodeURIComponent(name)}`;
    return new RedisDeploymentState(this, key, settings, this.now);
  }

  async close(): Promise<void> {
    if (!this.options.closeClient) return;
    try {
      if (this.client.status === "ready") {
        await this.client.quit();
        return;
      }
    } catch {
      // fall through to a hard disconnect
    }
    this.client.disconnect();
  }

  /** Runs one Redis operation; undefined when Redis could not answer. */
  async run<T>(operation: (scripts: RouterScripts, client: Redis) => Promise<T>): Promise<T | undefined> {
    try {
      if (this.client.status !== "ready") await this.connecting();
      const result = await operation(this.scripts, this.client);
      if (this.unavailable) {
        this.unavailable = false;
        this.options.onAvailabilityChange?.(undefined);
      }
      return result;
    } catch (err) {
      if (!this.unavailable) {
        this.unavailable = true;
        this.options.onAvailabilityChange?.(err instanceof Error ? err : new Error(String(err)));
      }
      return undefined;
    }
  }

  /**
   * While the connection is being opened (start-up), waits for it (bounded) rather than route the
   * first requests on local state; a lost connection fails at once (the client offline-queues nothing).
   */
  private connecting(): Promise<void> {
    const status = this.client.status;
    if (status !== "connecting" && status !== "connect" && status !== "wait") return Promise.resolve();
    if (status === "wait") this.client.connect().catch(() => {});
    this.opening ??= new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.client.off("ready", done);
        this.client.off("close", done);
        this.opening = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.options.connectWaitMs ?? 1000);
      this.client.once("ready", done);
      this.client.once("close", done);
    });
    return this.opening;
  }

  get available(): boolean {
    return !this.unavailable;
  }
}

function probeHoldOf(admission: Admitted): string {
  return admission.probe ? (admission.probeHold ?? "") : "";
}

/** Admitted on this instance's own fresh picture of a healthy, uncapped deployment. */
const HEALTHY_ADMISSION: Admitted = Object.freeze({
  admitted: true,
  probe: false,
  tokens: 0,
  failuresBefore: 0,
  via: "shared",
});

class RedisDeploymentState implements DeploymentState {
  private readonly local: MemoryDeploymentState;
  private failures = 0;
  /** When the circuit opened, on this process' clock; undefined: closed. */
  private openedAt: number | undefined;
  private seenAt = Number.NEGATIVE_INFINITY;
  private refreshing = false;

  constructor(
    private readonly store: RedisDeploymentStateStore,
    private readonly key: string,
    private readonly settings: DeploymentStateSettings,
    private readonly now: () => number,
  ) {
    this.local = new MemoryDeploymentState(settings, now, "local");
  }

  async admit(tokens: number, share = 1): Promise<Admission> {
    const { breakerCooldownMs, probeTtlMs, rpm, tpm } = this.settings;
    if (this.healthyAsSeen(rpm === undefined && tpm === undefined)) return HEALTHY_ADMISSION;
    const reply = await this.store.run((s) =>
      s.sbRouterAdmit(this.key, breakerCooldownMs, probeTtlMs, rpm ?? 0, tpm ?? 0, tokens, KEY_TTL_MS, share),
    );
    if (!reply) return this.local.admitNow(tokens, share);
    const [admitted, flag, failures, openedAgo, hold] = reply;
    this.saw(failures, openedAgo);
    if (admitted !== 1) return { admitted: false, reason: flag === 1 ? "capped" : "open" };
    return {
      admitted: true,
      probe: flag === 1,
      ...(flag === 1 && { probeHold: hold }),
      tokens: tpm === undefined ? 0 : tokens,
      failuresBefore: failures,
      via: "shared",
    };
  }

  succeeded(admission: Admitted): void {
    if (admission.via === "local") {
      this.local.succeeded(admission);
      return;
    }
    // Nothing to reset when the streak was empty and no probe was out (the common case: no write).
    if (admission.failuresBefore === 0 && !admission.probe) return;
    this.saw(0, -1);
    void this.store.run((_, client) => client.hdel(this.key, "failures", "opened", "probe"));
  }

  async failed(admission: Admitted): Promise<void> {
    if (admission.via === "local") {
      this.local.failNow(admission);
      return;
    }
    // Until Redis answers with the streak, this instance stops admitting on its own picture.
    this.failures++;
    const { breakerFailures } = this.settings;
    const reply = await this.store.run((s) =>
      s.sbRouterFailed(this.key, breakerFailures, probeHoldOf(admission), KEY_TTL_MS),
    );
    if (reply) this.saw(reply[0], reply[1]);
  }

  released(admission: Admitted): void {
    if (admission.via === "local") {
      this.local.released(admission);
      return;
    }
    if (admission.probe) void this.store.run((s) => s.sbRouterReleased(this.key, probeHoldOf(admission)));
  }

  settle(admission: Admitted, usedTokens: number): void {
    if (admission.via === "local") {
      this.local.settle(admission, usedTokens);
      return;
    }
    const tpm = this.settings.tpm;
    const unused = admission.tokens - usedTokens;
    if (tpm === undefined || admission.tokens === 0 || unused === 0) return;
    void this.store.run((s) => s.sbRouterSettle(this.key, tpm, unused, KEY_TTL_MS));
  }

  snapshot(): DeploymentSnapshot {
    if (!this.store.available) return this.local.snapshot();
    const now = this.now();
    if (now - this.seenAt >= SNAPSHOT_REFRESH_MS) this.refresh();
    if (this.openedAt === undefined) return { circuit: "closed", consecutiveFailures: this.failures };
    const open = now - this.openedAt < this.settings.breakerCooldownMs;
    return { circuit: open ? "open" : "half_open", consecutiveFailures: this.failures };
  }

  /**
   * Whether a request may go without asking Redis: the deployment has no caps to count against,
   * and this instance saw its circuit closed with no failure in the streak less than a refresh
   * ago. Redis would only say the same, at a round trip per request. What this instance may
   * miss meanwhile is another instance's failures: its own next failure reports the shared
   * picture (and every admission after it asks Redis), and the picture is asked for again once
   * it is older than the refresh interval. A circuit it sees open or half-open, a streak, or caps
   * always go through Redis, so a probe is still one across all instances.
   */
  private healthyAsSeen(uncapped: boolean): boolean {
    return (
      uncapped &&
      this.openedAt === undefined &&
      this.failures === 0 &&
      this.store.available &&
      this.now() - this.seenAt < SNAPSHOT_REFRESH_MS
    );
  }

  /** Reads the shared picture now (the health reports call snapshot(), which refreshes lazily). */
  async read(): Promise<DeploymentSnapshot | undefined> {
    const reply = await this.store.run((s) => s.sbRouterRead(this.key));
    if (!reply) return undefined;
    this.saw(reply[0], reply[1]);
    return this.snapshot();
  }

  private refresh(): void {
    if (this.refreshing) return;
    this.refreshing = true;
    void this.read().finally(() => {
      this.refreshing = false;
    });
  }

  private saw(failures: number, openedAgo: number): void {
    const now = this.now();
    this.failures = failures;
    this.openedAt = openedAgo < 0 ? undefined : now - openedAgo;
    this.seenAt = now;
  }
}
