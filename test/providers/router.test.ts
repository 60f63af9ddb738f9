import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeploymentTarget, orderTargets } from "../../src/router/deployment-target.js";
import { MemoryDeploymentState } from "../../src/router/memory-deployment-state.js";
import type { RoutedBackend } from "../../src/router/routed-backend.js";
import { chatLine, downloadLines, jsonl, uploadBatchFile, waitForBatch } from "../helpers/batches.js";
import {
  failureOf,
  type Gateway,
  manualTiming,
  readRawStream,
  seededRandom,
  startGateway,
} from "./helpers/gateway.js";
import { type MockUpstream, startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";
import { mockDeployment, mockUpstreamPair, routedGateways } from "./helpers/router-suite.js";
import { expectRequestsConform } from "./helpers/upstream-request-schemas.js";

const ask = (gateway: Gateway, model = "routed") =>
  gateway.client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }] });

describe("the router across deployments", () => {
  const [a, b] = mockUpstreamPair();
  const routed = routedGateways();
  const start = routed.start;

  it("retries a 500 on the same deployment after a jittered backoff", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 2 })] }], {
      retry_base_ms: 100,
    });
    a.faults.push({ status: 500 });
    const completion = await ask(g);
    expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    expect(a.requests).toHaveLength(2);
    // Full jitter: random (0.5 here) × base × 2^0.
    expect(routed.timing.sleeps).toEqual([50]);
  });

  it("waits what the upstream's retry-after-ms asks for on a 429", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }]);
    a.faults.push({ status: 429, headers: { "retry-after-ms": "1500", "retry-after": "2" } });
    await ask(g);
    expect(a.requests).toHaveLength(2);
    expect(routed.timing.sleeps).toEqual([1500]);
  });

  it("moves on to the next deployment at once when the asked-for wait would outlast the deadline", async () => {
    const g = await start([
      {
        id: "routed",
        balance: "least_in_flight",
        deadline_ms: 1_000,
        deployments: [mockDeployment(a, { max_retries: 3 }), mockDeployment(b, { weight: 0 })],
      },
    ]);
    a.faults.push({ status: 429, headers: { "retry-after": "30" } });
    await ask(g);
    expect(a.requests).toHaveLength(1);
    expect(b.requests).toHaveLength(1);
    expect(routed.timing.sleeps).toEqual([]);
  });

  it("falls back to the next deployment once the retries are spent", async () => {
    const g = await start([
      {
        id: "routed",
        deployments: [mockDeployment(a, { max_retries: 1 }), mockDeployment(b, { weight: 0 })],
      },
    ]);
    a.faults.push({ status: 503 }, { status: 502 });
    const completion = await ask(g);
    expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    expect([a.requests.length, b.requests.length]).toEqual([2, 1]);
  });

  it("falls back to a configured fallback model when every deployment failed", async () => {
    const g = await start([
      { id: "routed", fallbacks: ["backup"], deployments: [mockDeployment(a, { max_retries: 0 })] },
      { id: "backup", deployments: [mockDeployment(b)] },
    ]);
    a.faults.push({ status: 500 });
    const completion = await ask(g);
    expect(completion.model).toBe("routed");
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
  });

  it("does not retry or fall back on the caller's own mistake (a 400)", async () => {
    const g = await start([
      {
        id: "routed",
        fallbacks: ["backup"],
        deployments: [mockDeployment(a), mockDeployment(b, { weight: 0 })],
      },
      { id: "backup", deployments: [mockDeployment(b)] },
    ]);
    a.faults.push({ status: 400, body: { error: { message: "bad tool schema" } } });
    const error = await failureOf(ask(g));
    expect(error.status).toBe(400);
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
  });

  it("answers with the last failure when everything failed, and says a retry may help", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }]);
    a.faults.push({ status: 500 }, { status: 500 });
    const error = await failureOf(ask(g));
    expect(error.status).toBe(502);
    expect(error.headers?.get("x-should-retry")).toBe("true");
    expect(a.requests).toHaveLength(2);
  });

  it("gives up at the model's deadline on an upstream that hangs, streamed or not: a 504 held against the deployment", async () => {
    const g = await start([
      {
        id: "routed",
        deadline_ms: 300,
        deployments: [mockDeployment(a, { max_retries: 3, timeout_ms: 10_000, name: "a" })],
      },
    ]);
    a.faults.push({ hang: true });
    const error = await failureOf(ask(g));
    expect(error.status).toBe(504);
    expect(error.code).toBe("upstream_timeout");
    expect(error.headers?.get("x-should-retry")).toBe("true");

    a.faults.push({ hang: true });
    const streamed = await fetch(`${g.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "routed", messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    expect(streamed.status).toBe(504);
    expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe("upstream_timeout");
    expect(a.requests).toHaveLength(2);

    // Both were the deployment's failures, not callers that went away; the next request is answered.
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    expect(metrics).toContain(
      'switchboard_deployment_attempts_total{model="routed",deployment="a",outcome="failed"} 2',
    );
    expect((await ask(g)).choices[0]?.message.content).toBe("Hello from upstream");
  });

  it("never retries once the answer began: the stream ends with an error event and no [DONE]", async () => {
    const g = await start([
      {
        id: "routed",
        fallbacks: ["backup"],
        deployments: [mockDeployment(a, { max_retries: 3 }), mockDeployment(b, { weight: 0 })],
      },
      { id: "backup", deployments: [mockDeployment(b)] },
    ]);
    a.faults.push({ disconnectAfter: 2 });
    const response = await fetch(`${g.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "routed", messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const { events, done } = await readRawStream(response);
    expect(done).toBe(false);
    expect(JSON.parse(events.at(-1) ?? "{}")).toHaveProperty("error");
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
  });

  it("opens a failing deployment's circuit, skips it, probes it after the cooldown and closes it again", async () => {
    const g = await start(
      [
        {
          id: "routed",
          deployments: [
            mockDeployment(a, { max_retries: 0, name: "a" }),
            mockDeployment(b, { weight: 0, name: "b" }),
          ],
        },
      ],
      { breaker_failures: 2, breaker_cooldown_ms: 10_000 },
    );
    a.faults.push({ status: 500 }, { status: 500 });
    await ask(g);
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([2, 2]);

    // Open: a gets nothing.
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([2, 3]);
    const ready = (await (await fetch(`${g.url}/ready`)).json()) as {
      models: { id: string; ready: boolean; deployments: { name: string; circuit: string }[] }[];
    };
    expect(ready.models[0]?.deployments.map((d) => [d.name, d.circuit])).toEqual([
      ["a", "open"],
      ["b", "closed"],
    ]);
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    expect(metrics).toContain(
      'switchboard_deployment_circuit_state{model="routed",deployment="a",provider="openai-compatible",state="open"} 1',
    );
    expect(metrics).toContain(
      'switchboard_deployment_attempts_total{model="routed",deployment="a",outcome="failed"} 2',
    );

    // Half-open after the cooldown: one probe, which succeeds and closes the circuit.
    routed.timing.advance(10_000);
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([3, 3]);
    const backend = g.server.registry.resolve("routed").backend as RoutedBackend;
    expect(backend.health().deployments?.[0]?.circuit).toBe("closed");
  });

  it("re-opens the circuit when the half-open probe fails", async () => {
    const g = await start(
      [
        {
          id: "routed",
          deployments: [mockDeployment(a, { max_retries: 0 }), mockDeployment(b, { weight: 0 })],
        },
      ],
      { breaker_failures: 1, breaker_cooldown_ms: 10_000 },
    );
    a.faults.push({ status: 500 });
    await ask(g);
    routed.timing.advance(10_000);
    a.faults.push({ status: 500 });
    await ask(g);
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([2, 3]);
    const backend = g.server.registry.resolve("routed").backend as RoutedBackend;
    expect(backend.health().deployments?.[0]?.circuit).toBe("open");
  });

  it("sends a request to the deployment with the fewest in flight per unit of weight", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a), mockDeployment(b)] }]);
    const backend = g.server.registry.resolve("routed").backend as RoutedBackend;
    (backend.targets[0] as DeploymentTarget).inFlight = 1;
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([0, 1]);
    (backend.targets[0] as DeploymentTarget).inFlight = 0;
  });

  it("least_in_flight with nothing in flight: a 3:1 weight split sends about 3 of 4 requests to the heavy one", async () => {
    routed.timing = manualTiming(seededRandom(7));
    const g = await start([
      {
        id: "routed",
        balance: "least_in_flight",
        deployments: [mockDeployment(a, { weight: 3 }), mockDeployment(b, { weight: 1 })],
      },
    ]);
    // One after another: every request finds nothing in flight, so only the tie-break decides.
    for (let i = 0; i < 400; i++) await ask(g);
    const heavy = a.requests.length / 400;
    expect(a.requests.length + b.requests.length).toBe(400);
    expect(heavy).toBeGreaterThan(0.65);
    expect(heavy).toBeLessThan(0.85);
  });

  it("prepares a request once: the deployment it was prepared for is tried first, whatever a second draw says", async () => {
    routed.timing = manualTiming(seededRandom(11));
    const g = await start([{ id: "routed", deployments: [mockDeployment(a), mockDeployment(b)] }]);
    const backend = g.server.registry.resolve("routed").backend as RoutedBackend;
    let prepares = 0;
    for (const target of backend.targets) {
      const own = target.backend.prepare.bind(target.backend);
      target.backend.prepare = (request) => {
        prepares++;
        return own(request);
      };
    }
    for (let i = 0; i < 60; i++) await ask(g);
    expect(prepares).toBe(60);
    // Both deployments still take their share.
    expect(a.requests.length).toBeGreaterThan(15);
    expect(b.requests.length).toBeGreaterThan(15);
  });

  it("passes over a deployment at its requests-per-minute cap", async () => {
    const g = await start([
      { id: "routed", deployments: [mockDeployment(a, { rpm: 1 }), mockDeployment(b, { weight: 0 })] },
    ]);
    await ask(g);
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
    routed.timing.advance(60_000);
    await ask(g);
    expect([a.requests.length, b.requests.length]).toEqual([2, 1]);
  });
});

describe("batch lines and a deployment's rate caps", () => {
  let upstream: MockUpstream;
  let gateway: Gateway | undefined;
  beforeAll(async () => {
    upstream = await startMockOpenAiUpstream();
  });
  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
  });
  afterEach(() => {
    expectRequestsConform(upstream);
  });

  it("leaves the rest of a deployment's minute to interactive requests, and defers batch lines without failing them", async () => {
    const timing = manualTiming();
    gateway = await startGateway(
      {
        routed_models: [{ id: "routed", deployments: [mockDeployment(upstream, { rpm: 2 })] }],
        router: { batch_rate_share: 0.5 },
        // One attempt: a deferral that counted as one would answer the line with an error.
        batches: { concurrency: 1, poll_interval_ms: 20, max_attempts: 1 },
      },
      timing,
    );
    const g = gateway;
    const lines = ["b1", "b2"].map((id) => ({
      ...chatLine(id),
      body: { ...chatLine(id).body, model: "routed" },
    }));
    const batch = await g.client.batches.create({
      input_file_id: await uploadBatchFile(g.client, jsonl(lines)),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // Half of rpm 2: one batch line this minute.
    for (;;) {
      const now = await g.client.batches.retrieve(batch.id);
      if ((now.request_counts?.completed ?? 0) >= 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(upstream.requests).toHaveLength(1);
    // The other half of the minute is there for an interactive request.
    expect((await ask(g)).choices[0]?.message.content).toBe("Hello from upstream");
    expect(upstream.requests).toHaveLength(2);
    const waiting = await g.client.batches.retrieve(batch.id);
    expect(waiting.status).toBe("in_progress");
    expect(waiting.request_counts).toEqual({ total: 2, completed: 1, failed: 0 });

    timing.advance(60_000);
    const done = await waitForBatch(g.client, batch.id, undefined, 30_000);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 2, completed: 2, failed: 0 });
    const output = await downloadLines(g.client, done.output_file_id);
    expect(output.map((l) => l.response.status_code)).toEqual([200, 200]);
  });

  it("a deployment's caps give batch requests their share, and at least one request a minute", () => {
    let now = 0;
    const settings = { breakerFailures: 3, breakerCooldownMs: 1000, probeTtlMs: 1000 };
    const state = new MemoryDeploymentState({ ...settings, rpm: 4, tpm: 1000 }, () => now);
    expect(state.admitNow(100, 0.5).admitted).toBe(true);
    expect(state.admitNow(100, 0.5).admitted).toBe(true);
    // Two of four requests taken: the batch half is used; online requests still have room.
    expect(state.admitNow(100, 0.5).admitted).toBe(false);
    expect(state.admitNow(100).admitted).toBe(true);
    now += 60_000;
    expect(state.admitNow(500, 0.5).admitted).toBe(true);
    expect(state.admitNow(100, 0.5).admitted).toBe(false);
    expect(state.admitNow(100).admitted).toBe(true);
    const tiny = new MemoryDeploymentState({ ...settings, rpm: 1 }, () => now);
    expect(tiny.admitNow(1, 0.5).admitted).toBe(true);
  });
});

describe("balancing order", () => {
  const target = (name: string, weight: number) =>
    new DeploymentTarget(
      { name, provider: "test", backend: {} as never, weight, maxRetries: 0, owned: false },
      new MemoryDeploymentState({ breakerFailures: 1, breakerCooldownMs: 1, probeTtlMs: 1 }, () => 0),
    );

  it("weighted: each deployment comes first in proportion to its weight", () => {
    const targets = [target("heavy", 3), target("light", 1), target("standby", 0)];
    const random = seededRandom(1);
    const firsts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) {
      const order = orderTargets(targets, "weighted", random);
      expect(order.at(-1)?.name).toBe("standby");
      const name = order[0]?.name ?? "";
      firsts.set(name, (firsts.get(name) ?? 0) + 1);
    }
    const share = (firsts.get("heavy") ?? 0) / 4000;
    expect(share).toBeGreaterThan(0.7);
    expect(share).toBeLessThan(0.8);
  });

  it("least_in_flight: ties in load go to each deployment in proportion to its weight, the least loaded first", () => {
    const targets = [target("heavy", 3), target("light", 1), target("standby", 0)];
    const random = seededRandom(3);
    let heavyFirst = 0;
    for (let i = 0; i < 4000; i++) {
      const order = orderTargets(targets, "least_in_flight", random);
      expect(order.at(-1)?.name).toBe("standby");
      if (order[0]?.name === "heavy") heavyFirst++;
    }
    expect(heavyFirst / 4000).toBeGreaterThan(0.7);
    expect(heavyFirst / 4000).toBeLessThan(0.8);
    // Load still comes first: 3 in flight at weight 3 is 1 per unit, more than the idle light one.
    (targets[0] as DeploymentTarget).inFlight = 3;
    for (let i = 0; i < 100; i++)
      expect(orderTargets(targets, "least_in_flight", random)[0]?.name).toBe("light");
  });
});
