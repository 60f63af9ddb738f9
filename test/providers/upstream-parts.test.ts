import { once } from "node:events";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { OpenAiCompatibleAdapter } from "../../src/backends/providers/openai-compatible/openai-adapter.js";
import { UpstreamBackend } from "../../src/backends/providers/upstream-backend.js";
import { UpstreamClient } from "../../src/backends/providers/upstream-client.js";
import { CancelSource } from "../../src/core/cancellation.js";
import { drainParts } from "../../src/core/drain-parts.js";
import type { GenerationPart, GenerationRequest } from "../../src/core/generation.js";
import { textContent } from "../../src/core/messages.js";

const chunk = (delta: object, finish: string | null = null) =>
  `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;

const REQUEST: GenerationRequest = {
  model: "remote",
  input: { kind: "chat", messages: [{ role: "user", content: textContent("Hi") }] },
  sampling: { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0 },
  maxTokens: 16,
  stop: [],
  n: 1,
};

/** An OpenAI-compatible upstream each test answers by hand, and a backend in front of it. */
async function setUp(answer: (res: ServerResponse) => void) {
  const state = { requests: 0, closed: 0 };
  const server = createServer((req, res) => {
    state.requests++;
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      answer(res);
    });
  });
  server.on("connection", (socket) => socket.on("close", () => state.closed++));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const client = new UpstreamClient({
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    headers: {},
    secrets: [],
    maxConnections: 2,
    timeoutMs: 5_000,
    idleTimeoutMs: 5_000,
    errorMessage: () => undefined,
  });
  const backend = new UpstreamBackend(new OpenAiCompatibleAdapter("max_tokens"), client, {
    upstreamModel: "upstream",
    defaultMaxTokens: 16,
    secrets: [],
  });
  const close = async () => {
    await client.close();
    server.closeAllConnections();
    server.close();
  };
  return { backend, state, close };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe("an upstream answer's parts", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0)) await close();
  });

  it("are asked for at the first part, come out whole, and leave nothing in flight", async () => {
    const up = await setUp((res) =>
      res.end(
        `${chunk({ role: "assistant", content: "Hel" })}${chunk({ content: "lo" })}${chunk({}, "stop")}data: [DONE]\n\n`,
      ),
    );
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const parts = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    expect(up.state.requests).toBe(0);
    const seen: GenerationPart[] = [];
    for (let next = await parts.next(); !next.done; next = await parts.next()) {
      seen.push(next.value);
      expect(up.backend.stats().busySlots).toBe(1);
    }
    expect(seen).toEqual([
      { type: "text", choice: 0, text: "Hel" },
      { type: "text", choice: 0, text: "lo" },
      { type: "finish", choice: 0, reason: "stop" },
    ]);
    expect(up.backend.stats().busySlots).toBe(0);
    expect(await parts.next()).toEqual({ done: true, value: undefined });
    expect(up.state.closed).toBe(0);
  });

  it("give the parts before an upstream error in the same chunk, then the error", async () => {
    const up = await setUp((res) =>
      res.end(
        `${chunk({ content: "partial" })}data: ${JSON.stringify({ error: { message: "overloaded" } })}\n\n`,
      ),
    );
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const parts = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    expect((await parts.next()).value).toEqual({ type: "text", choice: 0, text: "partial" });
    await expect(parts.next()).rejects.toMatchObject({ code: "upstream_error" });
    expect(await parts.next()).toEqual({ done: true, value: undefined });
    expect(up.backend.stats().busySlots).toBe(0);
  });

  it("stop when the caller leaves early: the body and its connection are dropped, what went out is counted", async () => {
    const up = await setUp((res) => res.write(chunk({ content: "a long answer begins" })));
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const parts = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    expect((await parts.next()).value).toMatchObject({ text: "a long answer begins" });
    await parts.return?.(undefined);
    expect(up.backend.stats().busySlots).toBe(0);
    expect(prepared.progress.completionTokens).toBeGreaterThan(0);
    expect(prepared.progress.promptTokens).toBe(prepared.estimate.promptTokens);
    await until(() => up.state.closed === 1);
    expect(await parts.next()).toEqual({ done: true, value: undefined });
  });

  it("end without the decoder's closing check when the caller cut the answer", async () => {
    const up = await setUp((res) => res.write(chunk({ content: "never finished" })));
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const caller = new CancelSource();
    const parts = up.backend.generate(prepared, caller)[Symbol.asyncIterator]();
    await parts.next();
    const reason = new Error("client disconnected");
    const pending = parts.next();
    caller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(up.backend.stats().busySlots).toBe(0);
    await until(() => up.state.closed === 1);
  });
  it("send nothing when given up before the first part, and keep calls made together in order", async () => {
    const up = await setUp((res) =>
      res.end(`${chunk({ content: "one" })}${chunk({ content: "two" })}${chunk({}, "stop")}data: [DONE]\n\n`),
    );
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const unused = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    expect(await unused.return?.(undefined)).toEqual({ done: true, value: undefined });
    expect(await unused.next()).toEqual({ done: true, value: undefined });
    expect(up.state.requests).toBe(0);
    expect(up.backend.stats().busySlots).toBe(0);

    const parts = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    const together = await Promise.all([parts.next(), parts.next(), parts.next(), parts.next()]);
    expect(together.map((r) => r.value)).toEqual([
      { type: "text", choice: 0, text: "one" },
      { type: "text", choice: 0, text: "two" },
      { type: "finish", choice: 0, reason: "stop" },
      undefined,
    ]);
    expect(up.backend.stats().busySlots).toBe(0);
  });

  it("drain to the end in one call: the same parts, counted, the first told as it arrives", async () => {
    const usage = `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 } })}\n\n`;
    const rest = `${chunk({ content: "lo" })}${chunk({}, "stop")}${usage}data: [DONE]\n\n`;
    let sendRest: (() => void) | undefined;
    const up = await setUp((res) => {
      // Two writes: the rest only once the first part was told, so drain reads the body twice.
      res.write(chunk({ role: "assistant", content: "Hel" }));
      sendRest = () => res.end(rest);
    });
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const parts = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    const firsts: GenerationPart[] = [];
    // An upstream answer drains itself (not one next() at a time).
    expect("drain" in parts).toBe(true);
    const drained = await drainParts(parts, (part) => {
      firsts.push(part);
      sendRest?.();
    });
    expect(firsts).toEqual([{ type: "text", choice: 0, text: "Hel" }]);
    expect(drained).toEqual([
      { type: "text", choice: 0, text: "Hel" },
      { type: "text", choice: 0, text: "lo" },
      { type: "finish", choice: 0, reason: "stop" },
      { type: "usage", promptTokens: 7, completionTokens: 3, cachedTokens: 0 },
    ]);
    expect(prepared.progress).toEqual({ promptTokens: 7, completionTokens: 3, cachedTokens: 0 });
    expect(up.backend.stats().busySlots).toBe(0);
    expect(await parts.next()).toEqual({ done: true, value: undefined });
    expect(up.state.closed).toBe(0);
  });

  it("drain the rest after parts taken one by one, and fail as next() would on an upstream error", async () => {
    const up = await setUp((res) =>
      res.end(
        `${chunk({ content: "one" })}${chunk({ content: "two" })}data: ${JSON.stringify({ error: { message: "overloaded" } })}\n\n`,
      ),
    );
    cleanup.push(up.close);
    const prepared = await up.backend.prepare(REQUEST);
    const parts = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    expect((await parts.next()).value).toEqual({ type: "text", choice: 0, text: "one" });
    await expect(drainParts(parts)).rejects.toMatchObject({ code: "upstream_error" });
    expect(up.backend.stats().busySlots).toBe(0);
    expect(await parts.next()).toEqual({ done: true, value: undefined });

    const again = up.backend.generate(prepared, new CancelSource())[Symbol.asyncIterator]();
    await expect(drainParts(again)).rejects.toMatchObject({ code: "upstream_error" });
    expect(up.backend.stats().busySlots).toBe(0);
  });
});
