import { describe, expect, it } from "vitest";
import { failureOf, type Gateway, readRawStream } from "./helpers/gateway.js";
import { startMockAnthropicUpstream } from "./helpers/mock-anthropic-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const deployment = (url: string, fields: Record<string, unknown>) => ({
  provider: "anthropic",
  base_url: url,
  model: "claude-test",
  ...fields,
});

const BROKEN = ["error-event", "error-first", "disconnect", "cut", "malformed", "slow", "stall", "hang"];

const hi = [{ role: "user" as const, content: "Hi" }];

/** A raw streamed chat: its data events, parsed (but [DONE]), and whether it ended with [DONE]. */
async function rawStream(gateway: Gateway, model: string) {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: hi, stream: true }),
  });
  const { events, done } = await readRawStream(response);
  const parsed = events.filter((e) => e !== "[DONE]").map((e) => JSON.parse(e) as Record<string, unknown>);
  const text = parsed
    .map((e) => (e.choices as { delta: { content?: string } }[] | undefined)?.[0]?.delta.content ?? "")
    .join("");
  return { status: response.status, events: parsed, text, done };
}

describe("an Anthropic upstream that refuses for a while", () => {
  const env = useMockProviderGateway({
    start: startMockAnthropicUpstream,
    // One model per test: failures in a row would otherwise open a shared deployment's circuit.
    models: (url) =>
      ["claude", "claude-429", "claude-529"].map((id) => ({
        id,
        deployments: [deployment(url, { max_retries: 2, model: id })],
      })),
  });

  it("retries 429 (rate_limit_error), 529 (overloaded_error) and 500 until an answer comes", async () => {
    env.upstream.faults.push(
      { status: 429, type: "rate_limit_error", message: "Rate limited", headers: { "retry-after": "1" } },
      { status: 529, type: "overloaded_error", message: "Overloaded" },
    );
    const completion = await env.gateway.client.chat.completions.create({ model: "claude", messages: hi });
    expect(completion.choices[0]?.message.content).toBe("Hello from Claude");
    expect(env.upstream.requests).toHaveLength(3);

    env.upstream.requests.length = 0;
    env.upstream.faults.push({ status: 500, type: "api_error", message: "Internal" });
    await env.gateway.client.chat.completions.create({ model: "claude", messages: hi });
    expect(env.upstream.requests).toHaveLength(2);
  });

  it("answers 429 with the upstream's retry-after once the retries are spent", async () => {
    for (let i = 0; i < 3; i++) {
      env.upstream.faults.push({
        status: 429,
        type: "rate_limit_error",
        message: "Number of requests has exceeded your rate limit",
        headers: { "retry-after": "7" },
      });
    }
    const error = await failureOf(
      env.gateway.client.chat.completions.create({ model: "claude-429", messages: hi }),
    );
    expect(env.upstream.requests).toHaveLength(3);
    expect(error.status).toBe(429);
    expect(error.headers?.get("retry-after")).toBe("7");
    expect(error.message).toContain("exceeded your rate limit");
  });

  it("answers 503 when Anthropic stays overloaded (529)", async () => {
    for (let i = 0; i < 3; i++)
      env.upstream.faults.push({ status: 529, type: "overloaded_error", message: "Overloaded" });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({ model: "claude-529", messages: hi }),
    );
    expect(env.upstream.requests).toHaveLength(3);
    expect(error.status).toBe(503);
    expect(error.headers?.get("x-should-retry")).toBe("true");
  });
});

describe("an Anthropic upstream that breaks mid-answer", () => {
  const env = useMockProviderGateway({
    start: startMockAnthropicUpstream,
    // One model per test, as above: each test's failures open no circuit another test needs.
    models: (url) =>
      BROKEN.map((id) => ({
        id,
        deployments: [
          deployment(url, { max_retries: 0, timeout_ms: 1_000, idle_timeout_ms: 1_000, model: id }),
        ],
      })),
    // The timeout tests wait on real clocks.
    timing: "real",
  });

  /** Events before the first text delta of the mock's plain answer: the one at this index is "Hello". */
  const FIRST_TEXT = 7;
  /** message_stop's index in that answer. */
  const MESSAGE_STOP = 12;

  it("ends the client's stream with an error event and no [DONE] on Anthropic's mid-stream error event", async () => {
    env.upstream.faults.push({
      errorAfter: FIRST_TEXT + 1,
      error: { type: "overloaded_error", message: "Overloaded" },
    });
    const { status, events, text, done } = await rawStream(env.gateway, "error-event");
    expect(status).toBe(200);
    expect(text).toBe("Hello");
    expect(done).toBe(false);
    expect(events.at(-1)).toMatchObject({ error: { type: "server_error", code: "upstream_error" } });
    expect(JSON.stringify(events.at(-1))).toContain("Overloaded");
  });

  it("answers 502 with Anthropic's message when the error event comes before any content", async () => {
    env.upstream.faults.push({ errorAfter: 1, error: { type: "overloaded_error", message: "Overloaded" } });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({ model: "error-first", messages: hi }),
    );
    expect(error.status).toBe(502);
    expect(error.message).toContain("mid-answer: Overloaded");
  });

  it("ends the client's stream with an error event and no [DONE] when Anthropic disconnects", async () => {
    env.upstream.faults.push({ disconnectAfter: FIRST_TEXT + 1 });
    const { events, text, done } = await rawStream(env.gateway, "disconnect");
    expect(text).toBe("Hello");
    expect(done).toBe(false);
    expect(events.at(-1)).toMatchObject({ error: { type: "server_error" } });
  });

  it("treats a stream that ends without message_stop as cut short, never as a finished answer", async () => {
    env.upstream.faults.push({ endAfter: MESSAGE_STOP });
    const streamed = await rawStream(env.gateway, "cut");
    expect(streamed.text).toBe("Hello from Claude");
    expect(streamed.done).toBe(false);
    expect(streamed.events.at(-1)).toMatchObject({ error: { code: "upstream_protocol_error" } });

    for (const endAfter of [MESSAGE_STOP, 0]) {
      env.upstream.faults.push({ endAfter });
      const error = await failureOf(
        env.gateway.client.chat.completions.create({ model: "cut", messages: hi }),
      );
      expect(error.status).toBe(502);
      expect(error.message).toContain("ended before it was complete");
    }
  });

  it("refuses malformed events with a 502, streamed or not, rather than hanging or crashing", async () => {
    env.upstream.faults.push({ malformed: true });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({ model: "malformed", messages: hi }),
    );
    expect(error.status).toBe(502);
    expect(error.message).toContain("not JSON");
    env.upstream.faults.push({ malformed: true });
    const streamed = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "malformed", messages: hi, stream: true }),
    });
    expect(streamed.status).toBe(502);
    await streamed.text();
    // The gateway still answers.
    const completion = await env.gateway.client.chat.completions.create({ model: "malformed", messages: hi });
    expect(completion.choices[0]?.message.content).toBe("Hello from Claude");
  });

  it("passes a slow stream through whole while each gap stays under the idle timeout", async () => {
    env.upstream.faults.push({ eventDelayMs: 60 });
    const { text, done } = await rawStream(env.gateway, "slow");
    expect(text).toBe("Hello from Claude");
    expect(done).toBe(true);
  });

  it("cuts off a stream that goes silent before message_stop: an error event and no [DONE]", async () => {
    env.upstream.faults.push({ stallBeforeStop: true });
    const { events, text, done } = await rawStream(env.gateway, "stall");
    expect(text).toBe("Hello from Claude");
    expect(done).toBe(false);
    expect(events.at(-1)).toMatchObject({ error: { type: "server_error" } });
  });

  it("answers 504 when Anthropic hangs past the attempt's timeout", async () => {
    env.upstream.faults.push({ hang: true });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({ model: "hang", messages: hi }),
    );
    expect(error.status).toBe(504);
  });
});
