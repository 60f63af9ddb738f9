import { mkdtempSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import OpenAI, { APIUserAbortError } from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { buildRegistry } from "../../src/composition/build-registry.js";
import { validateConfig } from "../../src/config/load.js";
import type { Cancellation } from "../../src/core/cancellation.js";
import type { ModelBackend } from "../../src/core/generation.js";
import { createLogger } from "../../src/observability/logger.js";
import type { Deployment, ModelRegistry } from "../../src/router/model-registry.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { contextFor, inFlightTokens, TEST_ENGINE } from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * Faults around /v1/chat/completions on a real listening server: clients that leave or stop
 * reading, overload, and backends that fail before or after the stream began.
 *
 * Besides the tiny model, the server carries test deployments over the tiny model's backend,
 * added to the registry it is built with: some observe or pad its parts (sharing its slots),
 * others replace its generation with one that fails or never ends.
 */

const TINY = "tiny";
/** A generation far longer than it takes a test to cancel it, on the test engine. */
const LONG = inFlightTokens(400);

/** What a wrapped deployment saw: parts handed to the route and the cancellations it was given. */
interface Observed {
  parts: number;
  signals: Cancellation[];
}

interface Harness {
  server: RunningServer;
  url: string;
  client: OpenAI;
  logs: string[];
  /** Parts each wrapped deployment has handed to the route, and the cancellations it was given. */
  seen: Map<string, Observed>;
  busySlots(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The tiny model's backend with its generation replaced; everything else (prepare, stats, ready)
 * stays the tiny model's, so these deployments pass the same admission as the real one.
 */
function withGenerate(inner: ModelBackend, generate: ModelBackend["generate"]): ModelBackend {
  return new Proxy(inner, {
    get(target, property) {
      if (property === "generate") return generate;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function startHarness(
  options: {
    model?: Record<string, unknown>;
    config?: Record<string, unknown>;
    extra?: (registry: ModelRegistry, tiny: Deployment, seen: Harness["seen"]) => void;
  } = {},
): Promise<Harness> {
  const config = validateConfig({
    port: 0,
    log_level: "info",
    demo_model: false,
    data_dir: mkdtempSync(join(tmpdir(), "sb-faults-")),
    ...options.config,
    models: [
      {
        id: TINY,
        source: inject("tinyModelPath"),
        // Room for the longest generation a test asks for.
        context_size: contextFor(LONG),
        parallel: 2,
        threads: 1,
        gpu_layers: 0,
        engine: TEST_ENGINE,
        ...options.model,
      },
    ],
  });
  const logs: string[] = [];
  const logger = createLogger(
    "info",
    new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    }),
  );
  const registry = await buildRegistry(config, logger);
  const tiny = registry.resolve(TINY);
  const seen: Harness["seen"] = new Map();
  options.extra?.(registry, tiny, seen);
  const server = await startServer(config, { logger, registry });
  const client = new OpenAI({
    baseURL: `${server.url}/v1`,
    apiKey: "test-key",
    maxRetries: 0,
    timeout: 30_000,
  });
  return {
    server,
    url: server.url,
    client,
    logs,
    seen,
    async busySlots() {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const match = /^switchboard_busy_slots\{model="tiny"\} (\d+)$/m.exec(text);
      if (!match) throw new Error("no switchboard_busy_slots series for tiny");
      return Number(match[1]);
    },
    async stop() {
      await server.stop();
      await tiny.backend.close();
    },
  };
}

/** A deployment over the tiny model's own backend (same slots) that counts parts and can pad text. */
function addObserved(
  registry: ModelRegistry,
  tiny: Deployment,
  seen: Harness["seen"],
  id: string,
  padTextTo = 0,
): void {
  const record: Observed = { parts: 0, signals: [] };
  seen.set(id, record);
  const inner = tiny.backend;
  registry.add({
    ...tiny,
    id,
    aliases: [],
    backend: withGenerate(inner, async function* (prepared, signal) {
      record.signals.push(signal);
      for await (const part of inner.generate(prepared, signal)) {
        record.parts++;
        yield part.type === "text" && padTextTo > 0
          ? { ...part, text: part.text.padEnd(padTextTo, "~") }
          : part;
      }
    }),
  });
}

function chatBody(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], ...extra });
}

/** A raw streaming request: resolves once the response head arrived; frames are read as they come. */
function openStream(
  url: string,
  body: string,
): Promise<{ res: http.IncomingMessage; req: http.ClientRequest; frames: string[]; text: () => string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/v1/chat/completions`,
      { method: "POST", headers: { "content-type": "application/json" }, agent: false },
      (res) => {
        let text = "";
        const frames: string[] = [];
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
          const parts = text.split("\n\n");
          frames.splice(0, frames.length, ...parts.slice(0, -1).filter((f) => f.startsWith("data: ")));
        });
        res.on("error", () => {});
        resolve({ res, req, frames, text: () => text });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function expectGenericServerError(error: Record<string, unknown>, leaked: string[]): void {
  expect(error).toMatchObject({ type: "server_error", param: null });
  expect(error.message).toEqual(expect.any(String));
  for (const secret of leaked) expect(JSON.stringify(error)).not.toContain(secret);
  expect(JSON.stringify(error)).not.toMatch(/\/[a-z]+\/|\.ts\b|\.js\b|\bat /i);
}

const SECRET_PATH = "/srv/secret/weights/model.gguf";
let endlessClosed = false;

describe("chat completions under client and backend faults", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      extra(registry, tiny, seen) {
        addObserved(registry, tiny, seen, "tiny-observed");
        registry.add({
          ...tiny,
          id: "fails-midstream",
          aliases: [],
          backend: withGenerate(tiny.backend, async function* () {
            yield { type: "text", choice: 0, text: "partial answer" };
            throw new Error(`decode failed reading ${SECRET_PATH}`);
          }),
        });
        registry.add({
          ...tiny,
          id: "endless",
          aliases: [],
          // Like an upstream proxy that only notices cancellation when its consumer closes it.
          backend: withGenerate(tiny.backend, async function* () {
            try {
              for (;;) {
                await new Promise((resolve) => setImmediate(resolve));
                yield { type: "text", choice: 0, text: "more " };
              }
            } finally {
              endlessClosed = true;
            }
          }),
        });
        registry.add({
          ...tiny,
          id: "fails-at-once",
          aliases: [],
          // biome-ignore lint/correctness/useYield: a backend that fails before its first part
          backend: withGenerate(tiny.backend, async function* () {
            throw new Error(`ENOENT: no such file, open '${SECRET_PATH}'`);
          }),
        });
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /**
   * Counts the tokens generated while the server notices a client that left: only an engine in
   * this process is held back while the server waits for CPU; one in a process of its own
   * generates on, as many tokens as the machine's load allows (its cancellation is checked in
   * test/engines/chat-conformance.ts).
   */
  const countsTokensAfterAbort = it.skipIf(TEST_ENGINE !== "in-process");

  countsTokensAfterAbort(
    "stops generating and frees the slot at once when a streaming client disconnects",
    async () => {
      const record = h.seen.get("tiny-observed") as Observed;
      const stream = await openStream(h.url, chatBody("tiny-observed", { stream: true, max_tokens: 400 }));
      expect(stream.res.statusCode).toBe(200);
      const requestId = String(stream.res.headers["x-request-id"]);
      await waitFor("two streamed chunks", () => stream.frames.length >= 2, 2_000);
      stream.req.destroy();

      await waitFor("the generation signal to abort", () => record.signals.at(-1)?.aborted === true, 2_000);
      await waitFor("busy slots to return to 0", async () => (await h.busySlots()) === 0, 2_000);
      // Far fewer parts than the 400 tokens asked for: generation stopped, it did not run on.
      expect(record.parts).toBeLessThan(100);
      expect(stream.text()).not.toContain("[DONE]");

      const next = await h.client.chat.completions.create({
        model: TINY,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 4,
      });
      expect(next.choices[0]?.finish_reason).toBe("length");

      // The request that was cut short is still logged once (as a client-closed 499).
      await waitFor("the request log line", () => requestLines(h.logs, requestId).length > 0, 2_000);
      expect(requestLines(h.logs, requestId)).toHaveLength(1);
      expect(requestLines(h.logs, requestId)[0]).toMatchObject({ status: 499, model: "tiny-observed" });
    },
  );

  // Whatever ends a stream, the route closes the backend's part stream, so even a backend that
  // never polls its AbortSignal is not left suspended.
  it("closes the backend's part stream when a streaming client disconnects", async () => {
    endlessClosed = false;
    const stream = await openStream(h.url, chatBody("endless", { stream: true }));
    await waitFor("two streamed chunks", () => stream.frames.length >= 2, 2_000);
    stream.req.destroy();
    await waitFor("the backend stream to be closed", () => endlessClosed, 2_000);
  });

  countsTokensAfterAbort(
    "stops generating and frees the slot when a non-streaming client aborts",
    async () => {
      const record = h.seen.get("tiny-observed") as Observed;
      record.parts = 0;
      const controller = new AbortController();
      const pending = h.client.chat.completions.create(
        { model: "tiny-observed", messages: [{ role: "user", content: "Hi" }], max_tokens: 400 },
        { signal: controller.signal },
      );
      pending.catch(() => {});
      await waitFor("generation to start", () => record.parts >= 2, 2_000);
      controller.abort();
      await expect(pending).rejects.toBeInstanceOf(APIUserAbortError);

      await waitFor("the generation signal to abort", () => record.signals.at(-1)?.aborted === true, 2_000);
      await waitFor("busy slots to return to 0", async () => (await h.busySlots()) === 0, 2_000);
      expect(record.parts).toBeLessThan(100);

      const next = await h.client.chat.completions.create({
        model: TINY,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 4,
      });
      expect(next.choices).toHaveLength(1);
    },
  );

  it("ends a stream that fails after it began with an error event and no [DONE]", async () => {
    const res = await fetch(`${h.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody("fails-midstream", { stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toEqual(expect.any(String));
    const text = await res.text();
    const frames = text
      .split("\n\n")
      .filter((f) => f.startsWith("data: "))
      .map((f) => f.slice("data: ".length));
    expect(frames).not.toContain("[DONE]");
    expect(text).toContain("partial answer");
    const last = JSON.parse(frames.at(-1) as string) as { error: Record<string, unknown> };
    expect(Object.keys(last.error).sort()).toEqual(["code", "message", "param", "type"]);
    expectGenericServerError(last.error, [SECRET_PATH, "decode failed"]);

    // The SDK turns the error event into a thrown error rather than a quiet end.
    const stream = await h.client.chat.completions.create({
      model: "fails-midstream",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
    });
    let content = "";
    await expect(
      (async () => {
        for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? "";
      })(),
    ).rejects.toBeInstanceOf(OpenAI.APIError);
    expect(content).toBe("partial answer");
  });

  it("answers a backend failure before any output with a generic 500 envelope", async () => {
    for (const stream of [false, true]) {
      const res = await fetch(`${h.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody("fails-at-once", { stream }),
      });
      expect(res.status).toBe(500);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(res.headers.get("x-request-id")).toEqual(expect.any(String));
      const body = (await res.json()) as { error: Record<string, unknown> };
      expect(Object.keys(body)).toEqual(["error"]);
      expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
      expectGenericServerError(body.error, [SECRET_PATH, "ENOENT", "no such file"]);
    }
    await expect(
      h.client.chat.completions.create({
        model: "fails-at-once",
        messages: [{ role: "user", content: "Hi" }],
      }),
    ).rejects.toMatchObject({ status: 500 });
  });
});

describe("a client that stops reading", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      // A second is plenty for a reader that is merely slow on loopback.
      config: { sse_drain_timeout_ms: 1_000 },
      extra(registry, tiny, seen) {
        // 64 KiB per token: 450 tokens (~29 MB) are far more than loopback socket buffers hold
        // even after the kernel grows them, however fast the tokens come.
        addObserved(registry, tiny, seen, "tiny-firehose", 64 * 1024);
      },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("does not hold up other requests, and is cut off once the drain timeout passes", async () => {
    const record = h.seen.get("tiny-firehose") as Observed;
    const { port } = new URL(h.url);
    const body = chatBody("tiny-firehose", { stream: true, max_tokens: 450 });
    const stalled = net.connect(Number(port), "127.0.0.1");
    stalled.pause();
    stalled.on("error", () => {});
    stalled.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor(
      "the stalled stream to hold a slot",
      async () => record.parts > 0 && (await h.busySlots()) === 1,
      2_000,
    );

    // The other slot still serves, while the stalled one is stuck behind its full socket.
    const other = await h.client.chat.completions.create({
      model: TINY,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 8,
    });
    expect(other.choices[0]?.finish_reason).toBe("length");
    const streamed = await h.client.chat.completions.create({
      model: TINY,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 8,
      stream: true,
    });
    let chunks = 0;
    for await (const _ of streamed) chunks++;
    expect(chunks).toBeGreaterThan(1);
    expect(record.signals[0]?.aborted).toBe(false);

    // The stalled stream is cut off and its slot comes back.
    await waitFor("the stalled stream to be cut off", () => record.signals[0]?.aborted === true, 10_000);
    expect(record.parts).toBeLessThan(450);
    await waitFor("busy slots to return to 0", async () => (await h.busySlots()) === 0, 2_000);

    // What the client finally reads is a truncated stream, never one that claims success.
    let received = "";
    stalled.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
    });
    stalled.resume();
    await new Promise((resolve) => stalled.once("close", resolve));
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(received).not.toContain("[DONE]");

    const after = await h.client.chat.completions.create({
      model: TINY,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
    });
    expect(after.choices).toHaveLength(1);
  });
});

describe("overload", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ model: { parallel: 1, max_queue: 1 } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("queues one, refuses the rest at once with 429 and retry hints, and finishes the others", async () => {
    const backend = h.server.registry.resolve(TINY).backend;
    let maxQueued = 0;
    const sampler = setInterval(() => {
      maxQueued = Math.max(maxQueued, backend.stats().queued);
    }, 1);
    const events: string[] = [];
    try {
      const results = await Promise.all(
        [0, 1, 2, 3].map(async (i) => {
          const res = await fetch(`${h.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: chatBody(TINY, { stream: true, max_tokens: LONG }),
          });
          const text = await res.text();
          events.push(`${res.status}:${i}`);
          return { res, text };
        }),
      );
      const refused = results.filter((r) => r.res.status === 429);
      const served = results.filter((r) => r.res.status === 200);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.length + served.length).toBe(4);
      for (const { res, text } of refused) {
        expect(res.headers.get("content-type")).toMatch(/^application\/json/);
        expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
        expect(Number(res.headers.get("retry-after-ms"))).toBeGreaterThan(0);
        expect(res.headers.get("x-request-id")).toEqual(expect.any(String));
        expect(JSON.parse(text)).toEqual({
          error: {
            message: expect.any(String),
            type: "rate_limit_error",
            param: null,
            code: "server_overloaded",
          },
        });
      }
      for (const { text } of served) {
        expect(text).toContain('"finish_reason":"length"');
        expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
      }
      // Refusals came back before any admitted stream finished: they did not wait for a slot.
      expect(events[0]).toMatch(/^429:/);
      expect(maxQueued).toBeLessThanOrEqual(1);
    } finally {
      clearInterval(sampler);
    }
    await waitFor("busy slots to return to 0", async () => (await h.busySlots()) === 0, 2_000);
  });
});

function requestLines(logs: string[], requestId: string): Record<string, unknown>[] {
  return logs
    .flatMap((chunk) => chunk.split("\n"))
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === "request" && line.requestId === requestId);
}
