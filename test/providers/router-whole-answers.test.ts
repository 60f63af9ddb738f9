import { describe, expect, it } from "vitest";
import type { DeploymentTarget } from "../../src/router/deployment-target.js";
import type { RoutedBackend } from "../../src/router/routed-backend.js";
import { chatLine, downloadLines, jsonl, uploadBatchFile, waitForBatch } from "../helpers/batches.js";
import { failureOf, type Gateway, readRawStream } from "./helpers/gateway.js";
import type { MockUpstream } from "./helpers/mock-openai-upstream.js";
import {
  mockDeployment,
  mockUpstreamPair,
  type RoutedGateways,
  routedGateways,
} from "./helpers/router-suite.js";

/**
 * A caller that does not stream sees nothing before its answer is whole, so an upstream that
 * breaks mid-answer is retried for it like one that failed before its first part; a streamed
 * answer is committed by its first part and never retried.
 */

const ask = (gateway: Gateway) =>
  gateway.client.chat.completions.create({ model: "routed", messages: [{ role: "user", content: "Hi" }] });

const targetsOf = (gateway: Gateway) =>
  (gateway.server.registry.resolve("routed").backend as RoutedBackend).targets as DeploymentTarget[];

/** The tokens each attempt settled against the deployment's tpm cap, in order. */
function watchSettles(target: DeploymentTarget): number[] {
  const settled: number[] = [];
  const own = target.state.settle.bind(target.state);
  target.state.settle = (admission, used) => {
    settled.push(used);
    own(admission, used);
  };
  return settled;
}

/** A gateway over one tpm-capped deployment of `upstream`, and the tokens each attempt there settles. */
async function cappedGateway(start: RoutedGateways["start"], upstream: MockUpstream, maxRetries: number) {
  const g = await start(
    [{ id: "routed", deployments: [mockDeployment(upstream, { max_retries: maxRetries, tpm: 100_000 })] }],
    { retry_base_ms: 100 },
  );
  return { g, settled: watchSettles(targetsOf(g)[0] as DeploymentTarget) };
}

describe("the router, for a caller that takes the answer whole", () => {
  const [a, b] = mockUpstreamPair();
  const routed = routedGateways();
  const start = routed.start;

  it("retries a chat whose upstream disconnects mid-answer, after backoff, and answers it whole", async () => {
    const { g, settled } = await cappedGateway(start, a, 2);
    a.faults.push({ disconnectAfter: 3 });
    const completion = await ask(g);
    expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    expect(completion.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 7 });
    expect(a.requests).toHaveLength(2);
    expect(routed.timing.sleeps).toEqual([50]);
    const report = g.server.registry.resolve("routed").backend.health().deployments?.[0];
    expect(report?.attempts).toEqual({ succeeded: 1, failed: 1 });
    expect(report?.inFlight).toBe(0);
    // The broken attempt keeps at the deployment what it used there (its prompt, what it
    // generated); the answer settles with the upstream's own count.
    expect(settled).toHaveLength(2);
    expect(settled[0]).toBeGreaterThan(0);
    expect(settled[1]).toBe(18);
  });

  it("moves on to the next deployment when the first breaks mid-answer with an error event", async () => {
    const g = await start([
      {
        id: "routed",
        deployments: [
          mockDeployment(a, { max_retries: 0, name: "a" }),
          mockDeployment(b, { weight: 0, name: "b" }),
        ],
      },
    ]);
    a.faults.push({ errorEventAfter: 2, message: "overloaded mid-answer" });
    const completion = await ask(g);
    expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    expect(metrics).toContain(
      'switchboard_deployment_attempts_total{model="routed",deployment="a",outcome="failed"} 1',
    );
    expect(metrics).toContain(
      'switchboard_deployment_attempts_total{model="routed",deployment="b",outcome="succeeded"} 1',
    );
    expect(g.server.registry.resolve("routed").backend.health().deployments?.[0]?.consecutiveFailures).toBe(
      1,
    );
  });

  it("records usage once, for the answer the client got", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }]);
    a.faults.push({ disconnectAfter: 3 });
    await ask(g);
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    expect(metrics).toContain('switchboard_tokens_total{model="routed",kind="prompt"} 11');
    expect(metrics).toContain('switchboard_tokens_total{model="routed",kind="completion"} 7');
  });

  it("answers with the last failure (502) when every attempt breaks mid-answer", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 2 })] }]);
    a.faults.push({ disconnectAfter: 3 }, { errorEventAfter: 2, message: "gone" }, { disconnectAfter: 2 });
    const error = await failureOf(ask(g));
    expect(error.status).toBe(502);
    expect(a.requests).toHaveLength(3);
    const report = g.server.registry.resolve("routed").backend.health().deployments?.[0];
    expect(report?.attempts).toEqual({ succeeded: 0, failed: 3 });
    expect(report?.inFlight).toBe(0);
  });

  it("retries a Responses API answer (not streamed) that broke mid-answer", async () => {
    const g = await start([{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }]);
    a.faults.push({ disconnectAfter: 3 });
    const response = await g.client.responses.create({ model: "routed", input: "Hi", store: false });
    expect(response.output_text).toBe("Hello from upstream");
    expect(a.requests).toHaveLength(2);
  });

  it("retries a batch line that broke mid-answer within the router, not as another try of the line", async () => {
    const g = await start(
      [{ id: "routed", deployments: [mockDeployment(a, { max_retries: 1 })] }],
      {},
      {
        // One try of the line: only the router's retry can answer it.
        batches: { concurrency: 1, poll_interval_ms: 20, max_attempts: 1 },
      },
    );
    a.faults.push({ disconnectAfter: 3 });
    const line = { ...chatLine("w1"), body: { ...chatLine("w1").body, model: "routed" } };
    const batch = await g.client.batches.create({
      input_file_id: await uploadBatchFile(g.client, jsonl([line])),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await waitForBatch(g.client, batch.id, undefined, 30_000);
    expect(done.request_counts).toEqual({ total: 1, completed: 1, failed: 0 });
    const output = await downloadLines(g.client, done.output_file_id);
    expect(output[0]?.response.status_code).toBe(200);
    expect(output[0]?.response.body.choices[0].message.content).toBe("Hello from upstream");
    expect(a.requests).toHaveLength(2);
  });

  it("is not cut by the deadline once its answer began, and times its first token on arrival, not at the end", async () => {
    const g = await start([{ id: "routed", deadline_ms: 150, deployments: [mockDeployment(a)] }]);
    a.faults.push({ eventDelayMs: 60 });
    const completion = await ask(g);
    expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    expect(a.requests).toHaveLength(1);
    // The time to first token is the first part's arrival, not when the gathered parts came out:
    // the four events after the first came at least 60 ms apart.
    const metrics = await (await fetch(`${g.url}/metrics`)).text();
    const sum = (name: string) =>
      Number(new RegExp(`${name}_sum\\{[^}]*\\} ([\\d.e+-]+)`).exec(metrics)?.[1]);
    const total = sum("switchboard_http_request_duration_seconds");
    const firstToken = sum("switchboard_time_to_first_token_seconds");
    expect(firstToken).toBeGreaterThan(0);
    expect(total - firstToken).toBeGreaterThan(0.2);
  });

  it("still never retries a streamed answer that broke: an error event, no [DONE], one upstream call", async () => {
    const g = await start([
      {
        id: "routed",
        deployments: [mockDeployment(a, { max_retries: 3 }), mockDeployment(b, { weight: 0 })],
      },
    ]);
    a.faults.push({ errorEventAfter: 2, message: "overloaded mid-answer" });
    const response = await fetch(`${g.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "routed", messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const { events, done } = await readRawStream(response);
    expect(done).toBe(false);
    expect(JSON.parse(events.at(-1) ?? "{}")).toHaveProperty("error");
    expect([a.requests.length, b.requests.length]).toEqual([1, 0]);
    const report = g.server.registry.resolve("routed").backend.health().deployments?.[0];
    expect(report?.attempts).toEqual({ succeeded: 1, failed: 0 });
  });
});

describe("the router, for a streamed attempt that breaks before its first part", () => {
  const [a] = mockUpstreamPair();
  const routed = routedGateways();
  const start = routed.start;

  it("retries it, and keeps its prompt counted against the deployment's tpm cap", async () => {
    const { g, settled } = await cappedGateway(start, a, 1);
    // The upstream accepts the request, says who speaks (no part yet) and is gone.
    a.faults.push({ disconnectAfter: 1 });
    const stream = await g.client.chat.completions.create({
      model: "routed",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("Hello from upstream");
    expect(a.requests).toHaveLength(2);
    // The broken attempt's prompt (as estimated) stays counted; the answer settles with the upstream's count.
    expect(settled).toHaveLength(2);
    expect(settled[0]).toBeGreaterThan(0);
    expect(settled[1]).toBe(18);
  });
});
