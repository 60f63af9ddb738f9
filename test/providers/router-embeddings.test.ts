import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { cancellationOf } from "../../src/core/cancellation.js";
import type { EmbeddingRequest } from "../../src/core/generation.js";
import type { RoutedBackend } from "../../src/router/routed-backend.js";
import { failureOf, type Gateway } from "./helpers/gateway.js";
import { mockDeployment, mockUpstreamPair, routedGateways } from "./helpers/router-suite.js";

/** Embeddings take the router's one path: retries, waits, deadline, next deployment, fallback models. */
describe("embeddings through the router", () => {
  const [a, b] = mockUpstreamPair();
  const routed = routedGateways();
  const start = routed.start;
  // The official SDK, as a client would call it (it asks for base64 and decodes the floats).
  const embed = (g: Gateway, model = "routed") => g.client.embeddings.create({ model, input: ["a", "b"] });
  const expectVectors = (result: Awaited<ReturnType<typeof embed>>) =>
    expect(result.data.map((d) => d.embedding)).toEqual([
      [0, 0.5, -0.25],
      [1, 0.5, -0.25],
    ]);

  it("retries a 500 on the same deployment after a jittered backoff, and the SDK gets the vectors", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 2 })] }], {
      retry_base_ms: 100,
    });
    a.faults.push({ status: 500 });
    const result = await embed(g);
    expectVectors(result);
    expect(result.model).toBe("routed");
    expect(result.usage.prompt_tokens).toBe(6);
    expect(a.requests).toHaveLength(2);
    expect(routed.timing.sleeps).toEqual([50]);
  });

  it("waits what the upstream's retry-after asks for on a 429", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }]);
    a.faults.push({ status: 429, headers: { "retry-after": "2" } });
    expectVectors(await embed(g));
    expect(a.requests).toHaveLength(2);
    expect(routed.timing.sleeps).toEqual([2000]);
  });

  it("retries an answer that is not JSON: the upstream's fault, like a 5xx", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }]);
    a.faults.push({ malformed: true });
    expectVectors(await embed(g));
    expect(a.requests).toHaveLength(2);
  });

  it("moves on to the next deployment once the retries are spent, or at once when the wait would outlast the deadline", async () => {
    const g = await start([
      {
        id: "routed",
        deadline_ms: 1_000,
        deployments: [mockDeployment(a, { max_retries: 1 }), mockDeployment(b, { weight: 0 })],
      },
    ]);
    a.faults.push({ status: 503 }, { status: 502 });
    expectVectors(await embed(g));
    expect([a.requests.length, b.requests.length]).toEqual([2, 1]);
    a.faults.push({ status: 429, headers: { "retry-after": "30" } });
    expectVectors(await embed(g));
    expect([a.requests.length, b.requests.length]).toEqual([3, 2]);
    expect(routed.timing.sleeps).toHaveLength(1);
  });

  it("falls back to a configured fallback model when every deployment failed", async () => {
    const g = await start([
      { id: "routed", fallbacks: ["backup"], deployments: [mockDeployment(a, { max_retries: 0 })] },
      { id: "backup", deployments: [mockDeployment(b)] },
    ]);
    a.faults.push({ status: 500 });
    const result = await embed(g);
    expectVectors(result);
    expect(result.model).toBe("routed");
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
  });

  it("gives up at the model's deadline on an upstream that hangs: 504, without waiting out the upstream timeout", async () => {
    const g = await start([
      {
        id: "routed",
        deadline_ms: 300,
        deployments: [mockDeployment(a, { max_retries: 3, timeout_ms: 10_000 })],
      },
    ]);
    a.faults.push({ hang: true });
    const began = Date.now();
    const error = await failureOf(embed(g));
    expect(error.status).toBe(504);
    expect(error.code).toBe("upstream_timeout");
    expect(Date.now() - began).toBeLessThan(5_000);
    expect(a.requests).toHaveLength(1);
  });

  it("does not retry the caller's own mistake (a 400) and does not hold it against the deployment", async () => {
    const g = await start(
      [
        { id: "routed", fallbacks: ["backup"], deployments: [mockDeployment(a, { max_retries: 2 })] },
        { id: "backup", deployments: [mockDeployment(b)] },
      ],
      { breaker_failures: 1 },
    );
    a.faults.push({ status: 400, body: { error: { message: "input too long" } } });
    const error = await failureOf(embed(g));
    expect(error.status).toBe(400);
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
    expectVectors(await embed(g));
    expect([a.requests.length, b.requests.length]).toEqual([2, 0]);
  });

  it("lets go of the caller's signal once the answer is in: a worker's signal outlives many calls", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a)] }]);
    const backend = g.server.registry.resolve("routed").backend as RoutedBackend;
    const request: EmbeddingRequest = { model: "routed", input: { kind: "text", texts: ["a"] } };
    const worker = new AbortController();
    for (let i = 0; i < 20; i++) {
      await backend.embed(await backend.prepareEmbedding(request), cancellationOf(worker.signal));
    }
    expect(a.requests).toHaveLength(20);
    expect(getEventListeners(worker.signal, "abort")).toHaveLength(0);
  });
});
