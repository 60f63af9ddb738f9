import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deleteRedisKeys, hasRedis, REDIS_URL, redisTestPrefix } from "../helpers/redis.js";
import { type Gateway, manualTiming, startGateway } from "./helpers/gateway.js";
import { mockUpstreamPair } from "./helpers/router-suite.js";

interface ReadyBody {
  models: { id: string; deployments?: { name: string; circuit: string; consecutiveFailures?: number }[] }[];
}

describe.runIf(await hasRedis())("two Switchboard instances sharing one Redis", () => {
  const [a, b] = mockUpstreamPair();
  let first: Gateway | undefined;
  let second: Gateway | undefined;
  let prefix: string;

  beforeEach(() => {
    prefix = redisTestPrefix();
  });
  afterEach(async () => {
    await first?.stop();
    await second?.stop();
    first = second = undefined;
    await deleteRedisKeys(prefix);
  });

  /** Both instances with the same config and the same Redis prefix, as behind a load balancer. */
  const startBoth = async (deploymentA: Record<string, unknown>, router: Record<string, unknown> = {}) => {
    const config = {
      redis: REDIS_URL,
      redis_prefix: prefix,
      router,
      routed_models: [
        {
          id: "routed",
          deployments: [
            {
              provider: "openai-compatible",
              name: "a",
              base_url: `${a.url}/v1`,
              model: "m",
              max_retries: 0,
              ...deploymentA,
            },
            { provider: "openai-compatible", name: "b", base_url: `${b.url}/v1`, model: "m", weight: 0 },
          ],
        },
      ],
    };
    first = await startGateway(config, manualTiming());
    second = await startGateway(config, manualTiming());
    return { one: first, two: second };
  };

  const ask = (gateway: Gateway) =>
    gateway.client.chat.completions.create({ model: "routed", messages: [{ role: "user", content: "Hi" }] });

  it("a circuit opened by one instance's failures is open on the other: it sends nothing there", async () => {
    const { one, two } = await startBoth({}, { breaker_failures: 2, breaker_cooldown_ms: 600_000 });
    a.faults.push({ status: 500 }, { status: 500 });
    await ask(one);
    await ask(one);
    expect([a.requests.length, b.requests.length]).toEqual([2, 2]);

    // The second instance never saw a failure of its own, yet skips the open deployment.
    const answer = await ask(two);
    expect(answer.choices[0]?.message.content).toBe("Hello from upstream");
    expect([a.requests.length, b.requests.length]).toEqual([2, 3]);
    const ready = (await (await fetch(`${two.url}/ready`)).json()) as ReadyBody;
    expect(ready.models[0]?.deployments?.map((d) => [d.name, d.circuit])).toEqual([
      ["a", "open"],
      ["b", "closed"],
    ]);
  });

  it("a deployment's requests-per-minute cap is one cap for both instances", async () => {
    const { one, two } = await startBoth({ rpm: 1 });
    await ask(one);
    await ask(two);
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
  });
});
