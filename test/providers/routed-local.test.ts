import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RoutedBackend } from "../../src/router/routed-backend.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { type MockUpstream, startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";
import { expectRequestsConform } from "./helpers/upstream-request-schemas.js";

/**
 * Routed models whose deployments include the local tiny model (`provider: local`), end to end
 * through the official SDK: served locally when the local deployment comes first, and the local
 * model taking over when the upstream fails, as a standby deployment or as the model's fallback.
 */

const UPSTREAM_TEXT = "Hello from upstream";

describe("routed models served by a local model", () => {
  let upstream: MockUpstream;
  let t: TestServer;

  beforeAll(async () => {
    upstream = await startMockOpenAiUpstream();
    const remote = (fields: Record<string, unknown> = {}) => ({
      provider: "openai-compatible",
      base_url: `${upstream.url}/v1`,
      model: "upstream-model",
      max_retries: 0,
      ...fields,
    });
    t = await startTestServer({
      config: {
        routed_models: [
          {
            id: "local-first",
            deployments: [{ provider: "local", model: TINY_MODEL }, remote({ weight: 0 })],
          },
          {
            id: "remote-then-local",
            deployments: [remote(), { provider: "local", model: TINY_MODEL, weight: 0 }],
          },
          { id: "remote-or-fallback", deployments: [remote()], fallbacks: [TINY_MODEL] },
        ],
      },
    });
  });
  afterAll(async () => {
    await t?.stop();
    await upstream?.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
    upstream.faults.length = 0;
  });

  /** Each deployment's attempts, as the router counted them. */
  const attempts = (model: string) =>
    (t.server.registry.resolve(model).backend as RoutedBackend)
      .health()
      .deployments?.map((d) => [d.name, d.attempts.succeeded, d.attempts.failed]);
  const chat = (model: string) =>
    t.client.chat.completions.create({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 6 });

  it("answers from the local model when its deployment comes first, plain and streamed, without calling the upstream", async () => {
    const completion = await chat("local-first");
    expect(completion.model).toBe("local-first");
    expect(completion.choices[0]?.message.content).not.toBe(UPSTREAM_TEXT);
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(6);

    const stream = await t.client.chat.completions.create({
      model: "local-first",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    let finish: string | null | undefined;
    let usage: { completion_tokens: number } | undefined;
    for await (const chunk of stream) {
      expect(chunk.model).toBe("local-first");
      finish ??= chunk.choices[0]?.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(["stop", "length"]).toContain(finish);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(upstream.requests).toEqual([]);
    expect(attempts("local-first")).toEqual([
      ["local:tiny", 2, 0],
      ["openai-compatible:upstream-model", 0, 0],
    ]);
  });

  it("goes to the upstream first where it is listed first, and to the local standby when it fails", async () => {
    const served = await chat("remote-then-local");
    expect(served.choices[0]?.message.content).toBe(UPSTREAM_TEXT);

    upstream.faults.push({ status: 500 });
    const rescued = await chat("remote-then-local");
    expect(rescued.model).toBe("remote-then-local");
    expect(rescued.choices[0]?.message.content).not.toBe(UPSTREAM_TEXT);
    expect(rescued.usage?.completion_tokens).toBeGreaterThan(0);
    expect(upstream.requests).toHaveLength(2);
    expect(attempts("remote-then-local")).toEqual([
      ["openai-compatible:upstream-model", 1, 1],
      ["local:tiny", 1, 0],
    ]);
    expectRequestsConform(upstream);
  });

  it("falls back to the local model named in fallbacks when the upstream is unavailable, streamed through the SDK", async () => {
    upstream.faults.push({ status: 503 });
    const stream = t.client.chat.completions.stream({
      model: "remote-or-fallback",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 6,
    });
    const final = await stream.finalChatCompletion();
    expect(final.model).toBe("remote-or-fallback");
    expect(final.choices[0]?.message.content).not.toBe(UPSTREAM_TEXT);
    expect(["stop", "length"]).toContain(final.choices[0]?.finish_reason);
    expect(upstream.requests).toHaveLength(1);
    expectRequestsConform(upstream);
  });
});
