import { createServer } from "node:net";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FAIL_FAST_REDIS_OPTIONS } from "../../src/limits/redis-limit-store.js";
import type {
  Admission,
  Admitted,
  DeploymentState,
  DeploymentStateSettings,
  DeploymentStateStore,
} from "../../src/router/deployment-state.js";
import { MemoryDeploymentStateStore } from "../../src/router/memory-deployment-state.js";
import { RedisDeploymentStateStore } from "../../src/router/redis-deployment-state.js";
import { deleteRedisKeys, hasRedis, REDIS_URL, redisTestPrefix } from "../helpers/redis.js";

/** Short enough to wait out for real (Redis runs on its own clock), long enough for a few round trips. */
const COOLDOWN_MS = 150;

const settings = (more: Partial<DeploymentStateSettings> = {}): DeploymentStateSettings => ({
  breakerFailures: 2,
  breakerCooldownMs: COOLDOWN_MS,
  probeTtlMs: 60_000,
  ...more,
});

interface Variant {
  name: string;
  open(): DeploymentStateStore;
  cleanup(): Promise<void>;
}

const redisVariant = (): Variant => {
  const prefix = redisTestPrefix();
  return {
    name: "redis",
    open: () =>
      new RedisDeploymentStateStore(new Redis(REDIS_URL, FAIL_FAST_REDIS_OPTIONS), {
        prefix,
        closeClient: true,
      }),
    cleanup: () => deleteRedisKeys(prefix),
  };
};
const memoryVariant: Variant = {
  name: "memory",
  open: () => new MemoryDeploymentStateStore(),
  cleanup: async () => {},
};

const withRedis = await hasRedis();
const variants = withRedis ? [memoryVariant, redisVariant()] : [memoryVariant];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function admitted(admission: Admission): Admitted {
  if (!admission.admitted) throw new Error(`expected an admission, got ${admission.reason}`);
  return admission;
}

/**
 * Outcome calls are fire-and-forget in the Redis store; one more command on the same connection
 * returns only after Redis ran them (commands on a connection run in order). A read, not an
 * admission: an instance may admit on its own fresh picture without a command at all.
 */
async function flushed(state: DeploymentState): Promise<void> {
  await state.read();
}

describe.each(variants)("deployment state in $name", (variant) => {
  let store: DeploymentStateStore;
  let n = 0;
  const deployment = (more: Partial<DeploymentStateSettings> = {}) =>
    store.forDeployment("model", `deployment-${++n}`, settings(more));

  beforeAll(() => {
    store = variant.open();
  });
  afterAll(async () => {
    await store?.close();
    await variant.cleanup();
  });

  it("opens after enough failures in a row, lets one probe through after the cooldown, and closes on its success", async () => {
    const state = deployment();
    state.failed(admitted(await state.admit(1)));
    // A success ends the streak: two more failures are needed.
    state.succeeded(admitted(await state.admit(1)));
    state.failed(admitted(await state.admit(1)));
    await flushed(state);
    expect(state.snapshot()).toEqual({ circuit: "closed", consecutiveFailures: 1 });
    state.failed(admitted(await state.admit(1)));
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "open" });
    expect(state.snapshot()).toEqual({ circuit: "open", consecutiveFailures: 2 });

    await sleep(COOLDOWN_MS + 50);
    const probe = admitted(await state.admit(1));
    expect(probe.probe).toBe(true);
    // One probe at a time.
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "open" });
    state.succeeded(probe);
    const after = admitted(await state.admit(1));
    expect(after.probe).toBe(false);
    expect(state.snapshot()).toEqual({ circuit: "closed", consecutiveFailures: 0 });
  });

  it("re-opens when the probe fails, and lets another probe go when one is released", async () => {
    const state = deployment({ breakerFailures: 1 });
    state.failed(admitted(await state.admit(1)));
    await sleep(COOLDOWN_MS + 50);
    const probe = admitted(await state.admit(1));
    expect(probe.probe).toBe(true);
    state.failed(probe);
    await flushed(state);
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "open" });
    expect(state.snapshot().circuit).toBe("open");

    await sleep(COOLDOWN_MS + 50);
    const second = admitted(await state.admit(1));
    expect(second.probe).toBe(true);
    // The caller left: the probe said nothing about the upstream, and another may go.
    state.released(second);
    const third = admitted(await state.admit(1));
    expect(third.probe).toBe(true);
  });

  it("lets a probe that outlived its hold end without freeing the next probe's hold", async () => {
    // Holds outlast the cooldown, so the circuit re-opened by the first probe's failure is
    // half-open again while the second probe still holds it.
    const state = deployment({ breakerFailures: 1, probeTtlMs: COOLDOWN_MS * 3 });
    state.failed(admitted(await state.admit(1)));
    await sleep(COOLDOWN_MS + 50);
    const late = admitted(await state.admit(1));
    expect(late.probe).toBe(true);
    await sleep(COOLDOWN_MS * 3 + 50);
    // The first probe's hold ran out: the next one goes.
    const next = admitted(await state.admit(1));
    expect(next.probe).toBe(true);
    state.released(late);
    await flushed(state);
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "open" });
    // The late probe fails after all: the circuit re-opens, and once the cooldown is out it is
    // still the second probe's.
    await state.failed(late);
    await sleep(COOLDOWN_MS + 50);
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "open" });
    // The second probe's own end frees the circuit for the next.
    state.released(next);
    expect(admitted(await state.admit(1)).probe).toBe(true);
  });

  it("passes over a deployment at its requests-per-minute cap", async () => {
    const state = deployment({ rpm: 3 });
    for (let i = 0; i < 3; i++) admitted(await state.admit(1));
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "capped" });
  });

  it("counts tokens against the tpm cap, takes one oversized request when the bucket is full, and gives back what was not used", async () => {
    const state = deployment({ tpm: 1000 });
    const big = admitted(await state.admit(5000));
    expect(big.tokens).toBe(5000);
    // In debt now: nothing goes, not even a small request.
    expect(await state.admit(10)).toEqual({ admitted: false, reason: "capped" });
    // It used 100 of the 5000 reserved: the bucket is near full again.
    state.settle(big, 100);
    const next = admitted(await state.admit(800));
    expect(await state.admit(200)).toEqual({ admitted: false, reason: "capped" });
    state.settle(next, 0);
    admitted(await state.admit(700));
  });
});

describe.runIf(withRedis)("deployment state shared through Redis", () => {
  const prefix = redisTestPrefix();
  let a: RedisDeploymentStateStore;
  let b: RedisDeploymentStateStore;
  beforeAll(() => {
    // Two stores, two connections, one prefix: two server instances.
    const open = () =>
      new RedisDeploymentStateStore(new Redis(REDIS_URL, FAIL_FAST_REDIS_OPTIONS), {
        prefix,
        closeClient: true,
      });
    a = open();
    b = open();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await deleteRedisKeys(prefix);
  });

  it("shows one instance's open circuit to the other, and lets exactly one probe through across both", async () => {
    const onA = a.forDeployment("m", "d", settings());
    const onB = b.forDeployment("m", "d", settings());
    onA.failed(admitted(await onA.admit(1)));
    onB.failed(admitted(await onB.admit(1)));
    await flushed(onB);
    expect(await onA.admit(1)).toEqual({ admitted: false, reason: "open" });
    expect(await onB.admit(1)).toEqual({ admitted: false, reason: "open" });
    expect(onB.snapshot()).toEqual({ circuit: "open", consecutiveFailures: 2 });

    await sleep(COOLDOWN_MS + 50);
    const tries = await Promise.all([onA.admit(1), onB.admit(1), onA.admit(1), onB.admit(1)]);
    expect(tries.filter((t) => t.admitted)).toHaveLength(1);
    const probe = tries.find((t) => t.admitted) as Admitted;
    expect(probe.probe).toBe(true);
    (tries.indexOf(probe) % 2 === 0 ? onA : onB).succeeded(probe);
    await flushed(onA);
    expect(admitted(await onB.admit(1)).probe).toBe(false);
  });

  /**
   * One deployment on both instances: A sees it healthy (one admission through Redis, a success),
   * then B fails it twice, which opens its circuit in Redis.
   */
  async function openedBehindA(name: string, more: Partial<DeploymentStateSettings> = {}) {
    const onA = a.forDeployment("m", name, settings(more));
    const onB = b.forDeployment("m", name, settings(more));
    onA.succeeded(admitted(await onA.admit(1)));
    onB.failed(admitted(await onB.admit(1)));
    onB.failed(admitted(await onB.admit(1)));
    await flushed(onB);
    expect(await onB.admit(1)).toEqual({ admitted: false, reason: "open" });
    return onA;
  }

  it("admits to a healthy uncapped deployment on a picture under a second old, until its own failure there", async () => {
    const onA = await openedBehindA("seen-healthy");
    // A has not heard yet: its fresh picture says healthy.
    const stale = admitted(await onA.admit(1));
    // Its own failure there brings the shared picture, and from then on it asks Redis.
    await onA.failed(stale);
    expect(await onA.admit(1)).toEqual({ admitted: false, reason: "open" });
    expect(onA.snapshot().circuit).toBe("open");
  });

  it("asks Redis again once its picture is a second old", async () => {
    const onA = await openedBehindA("aged", { breakerCooldownMs: 60_000 });
    await sleep(1100);
    expect(await onA.admit(1)).toEqual({ admitted: false, reason: "open" });
  });

  it("asks Redis for every admission to a deployment with caps", async () => {
    const onA = await openedBehindA("capped-health", { rpm: 1000 });
    expect(await onA.admit(1)).toEqual({ admitted: false, reason: "open" });
  });

  it("shares one cap: 10 concurrent admissions against rpm 4 let exactly 4 through", async () => {
    const onA = a.forDeployment("m", "capped", settings({ rpm: 4 }));
    const onB = b.forDeployment("m", "capped", settings({ rpm: 4 }));
    const tries = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? onA : onB).admit(1)));
    expect(tries.filter((t) => t.admitted)).toHaveLength(4);
  });

  it("keeps models and deployments whose names share a colon apart", async () => {
    const one = a.forDeployment("x:y", "z", settings({ rpm: 1 }));
    const other = a.forDeployment("x", "y:z", settings({ rpm: 1 }));
    admitted(await one.admit(1));
    admitted(await other.admit(1));
  });
});

describe("deployment state when Redis cannot be reached", () => {
  let store: RedisDeploymentStateStore | undefined;
  afterEach(async () => {
    await store?.close();
  });

  it("routes on this instance's own state, says so once, and never fails a request for it", async () => {
    const port = await closedPort();
    const changes: (string | undefined)[] = [];
    store = new RedisDeploymentStateStore(new Redis(`redis://127.0.0.1:${port}`, FAIL_FAST_REDIS_OPTIONS), {
      closeClient: true,
      onAvailabilityChange: (err) => changes.push(err?.message),
    });
    const state = store.forDeployment("m", "d", settings({ breakerFailures: 1, rpm: 2 }));
    const first = admitted(await state.admit(1));
    expect(first.via).toBe("local");
    state.failed(first);
    expect(await state.admit(1)).toEqual({ admitted: false, reason: "open" });
    expect(state.snapshot()).toEqual({ circuit: "open", consecutiveFailures: 1 });
    expect(changes).toHaveLength(1);
    expect(changes[0]).toBeTruthy();
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
