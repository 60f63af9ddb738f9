import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { failureOf, type Gateway, manualTiming, readRawStream, startGateway } from "./helpers/gateway.js";
import { type MockGemini, startMockGeminiUpstream } from "./helpers/mock-gemini-upstream.js";
import { expectRequestsConform } from "./helpers/upstream-request-schemas.js";

/**
 * A Gemini upstream that fails the ways real ones do: rate limits with retry-after, 5xx, an
 * answer that never starts, a slow stream, a connection dropped mid-answer, events that are not
 * JSON and a stream that ends before its finish reason. The router's clock is manual (its sleeps
 * are recorded and return at once); the upstream client's timeouts run on real time.
 */

const deployment = (url: string, fields: Record<string, unknown>) => ({
  provider: "gemini",
  base_url: `${url}/v1beta`,
  api_key: "AIzaSy-fault-test-key",
  model: "gemini-test",
  timeout_ms: 1_000,
  idle_timeout_ms: 1_000,
  ...fields,
});

const hi = [{ role: "user" as const, content: "Hi" }];

describe("a Gemini upstream that fails", () => {
  let upstream: MockGemini;
  let gateway: Gateway;
  const timing = manualTiming();

  beforeAll(async () => {
    upstream = await startMockGeminiUpstream();
    gateway = await startGateway(
      {
        routed_models: [
          { id: "gemini", deployments: [deployment(upstream.url, { max_retries: 2 })] },
          { id: "gemini-once", deployments: [deployment(upstream.url, { max_retries: 0 })] },
        ],
        // The breaker must not open on the failures one test leaves for the next.
        router: { breaker_failures: 1000 },
      },
      timing,
    );
  });
  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
  });
  beforeEach(() => {
    upstream.requests.length = 0;
    upstream.faults.length = 0;
    upstream.violations.length = 0;
    timing.sleeps.length = 0;
  });
  afterEach(() => {
    expectRequestsConform(upstream);
  });

  const streamRaw = (model: string) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: hi, stream: true }),
    });

  it("waits as long as a 429's retry-after says, then answers from the retry", async () => {
    upstream.faults.push({
      status: 429,
      message: "Resource has been exhausted",
      headers: { "retry-after": "3" },
    });
    const completion = await gateway.client.chat.completions.create({ model: "gemini", messages: hi });
    expect(completion.choices[0]?.message.content).toBe("Hello from Gemini");
    expect(upstream.requests).toHaveLength(2);
    expect(timing.sleeps).toEqual([3_000]);
  });

  it("retries 500 and 503 up to max_retries, then answers 503 after exactly 1 + max_retries calls", async () => {
    upstream.faults.push({ status: 500, message: "Internal error" }, { status: 503, message: "Overloaded" });
    const recovered = await gateway.client.chat.completions.create({ model: "gemini", messages: hi });
    expect(recovered.choices[0]?.message.content).toBe("Hello from Gemini");
    expect(upstream.requests).toHaveLength(3);

    upstream.requests.length = 0;
    upstream.faults.push(
      { status: 503, message: "Overloaded" },
      { status: 503, message: "Overloaded" },
      { status: 503, message: "Overloaded" },
      // Left over: proves no fourth call was made.
      { status: 503, message: "Overloaded" },
    );
    const failed = await failureOf(gateway.client.chat.completions.create({ model: "gemini", messages: hi }));
    expect(failed.status).toBe(503);
    expect(failed.code).toBe("upstream_unavailable");
    expect(failed.headers?.get("x-should-retry")).toBe("true");
    expect(upstream.requests).toHaveLength(3);
    expect(upstream.faults).toHaveLength(1);
  });

  it("answers 504 when the upstream never starts its answer", async () => {
    upstream.faults.push({ hang: true });
    const started = Date.now();
    const error = await failureOf(
      gateway.client.chat.completions.create({ model: "gemini-once", messages: hi }),
    );
    expect(error.status).toBe(504);
    expect(upstream.requests).toHaveLength(1);
    // The attempt's timeout_ms (1 s) ended it, not a test timeout.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("passes a slow stream through whole while each gap stays under the idle timeout", async () => {
    upstream.faults.push({ eventDelayMs: 200 });
    const { events, done } = await readRawStream(await streamRaw("gemini-once"));
    expect(done).toBe(true);
    const text = events
      .slice(0, -1)
      .map((e) => (JSON.parse(e) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content)
      .join("");
    expect(text).toBe("Hello from Gemini");
  });

  it("ends a stream the upstream broke off with an error event and no [DONE], without a retry", async () => {
    upstream.faults.push({ disconnectAfter: 2 });
    const { events, done } = await readRawStream(await streamRaw("gemini"));
    expect(done).toBe(false);
    // What was streamed before the break reached the client.
    expect(events.some((e) => e.includes('"content":"Hello"'))).toBe(true);
    expect(JSON.parse(events.at(-1) ?? "{}")).toMatchObject({ error: { type: "server_error" } });
    // Text was already sent: a retry would repeat it.
    expect(upstream.requests).toHaveLength(1);
  });

  it("refuses an event that is not JSON with a 502, and a retry gets past it", async () => {
    upstream.faults.push({ malformed: true });
    const error = await failureOf(
      gateway.client.chat.completions.create({ model: "gemini-once", messages: hi }),
    );
    expect(error.status).toBe(502);
    expect(error.code).toBe("upstream_protocol_error");

    upstream.requests.length = 0;
    upstream.faults.push({ malformed: true });
    const completion = await gateway.client.chat.completions.create({ model: "gemini", messages: hi });
    expect(completion.choices[0]?.message.content).toBe("Hello from Gemini");
    expect(upstream.requests).toHaveLength(2);
  });

  it("never passes a stream that ended before its finish reason off as a whole answer", async () => {
    upstream.faults.push({ truncated: true });
    const error = await failureOf(
      gateway.client.chat.completions.create({ model: "gemini-once", messages: hi }),
    );
    expect(error.status).toBe(502);
    expect(error.message).toContain("ended before it was complete");

    upstream.faults.push({ truncated: true });
    const { events, done } = await readRawStream(await streamRaw("gemini-once"));
    expect(done).toBe(false);
    expect(events.some((e) => e.includes('"finish_reason":"stop"'))).toBe(false);
    expect(JSON.parse(events.at(-1) ?? "{}")).toMatchObject({
      error: { type: "server_error", code: "upstream_protocol_error" },
    });
  });

  it("refuses an embeddings answer that is not JSON with an error, not a hang", async () => {
    upstream.faults.push({ malformed: true });
    const error = await failureOf(gateway.client.embeddings.create({ model: "gemini-once", input: ["a"] }));
    expect(error.status).toBe(502);
    expect(error.code).toBe("upstream_protocol_error");
    expect(upstream.requests).toHaveLength(1);
  });
});
