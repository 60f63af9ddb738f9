import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LlamaServerEngine } from "../../src/backends/local/engines/llama-server/llama-server-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { makeModel } from "../../src/models/make-model.js";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * The chat conformance behaviour, on the llama-server engine: what a client sees must not depend
 * on the engine. A representative subset of test/api (SWITCHBOARD_TEST_ENGINE=llama-server runs
 * all of it on this engine).
 */
const binary = await llamaServerForTests();
const hello = [{ role: "user" as const, content: "Hello there" }];

export function engineOf(t: TestServer): LlamaServerEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as LlamaServerEngine;
}

describe.skipIf(!binary)("chat completions on the llama-server engine", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      config: { engines: { llama_server: { binary } } },
      model: { engine: "llama-server" },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function chat(params: Partial<ChatCompletionCreateParamsNonStreaming> = {}): Promise<ChatCompletion> {
    const completion = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 12,
      ...params,
    });
    expectMatchesSchema(completion, "CreateChatCompletionResponse");
    return completion;
  }

  async function stream(params: Record<string, unknown> = {}): Promise<ChatCompletionChunk[]> {
    const s = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 10,
      ...params,
      stream: true,
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of s) {
      expectMatchesSchema(chunk, "CreateChatCompletionStreamResponse");
      chunks.push(chunk);
    }
    return chunks;
  }

  const text = (c: ChatCompletion, i = 0) => c.choices[i]?.message.content ?? "";
  const streamed = (chunks: ChatCompletionChunk[], i = 0) =>
    chunks.flatMap((c) => c.choices.filter((x) => x.index === i).map((x) => x.delta.content ?? "")).join("");

  it("runs the model on llama-server and says so in /ready", async () => {
    const ready = (await (await fetch(`${t.url}/ready`)).json()) as {
      status: string;
      models: { id: string; ready: boolean; engine?: { engine: string; state: string; pid?: number } }[];
    };
    expect(ready.status).toBe("ready");
    const model = ready.models.find((m) => m.id === TINY_MODEL);
    expect(model?.ready).toBe(true);
    expect(model?.engine).toMatchObject({ engine: "llama-server", state: "ready" });
    expect(model?.engine?.pid).toBeGreaterThan(0);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain(
      `switchboard_engine_state{model="${TINY_MODEL}",engine="llama-server",state="ready"} 1`,
    );
    expect(metrics).toMatch(
      /switchboard_engine_resident_memory_bytes\{model="tiny",engine="llama-server"\} \d+/,
    );
  });

  it("answers a plain completion with max_tokens tokens and finish_reason length", async () => {
    const completion = await chat();
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.finish_reason).toBe("length");
    expect(completion.usage?.completion_tokens).toBe(12);
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(text(completion).length).toBeGreaterThan(0);
  });

  it("streams the same text as the non-streamed completion for the same seed", async () => {
    const whole = await chat({ seed: 77, temperature: 1, max_tokens: 10 });
    const chunks = await stream({ seed: 77, temperature: 1, stream_options: { include_usage: true } });
    expect(streamed(chunks)).toBe(text(whole));
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(10);
    expect(chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0]?.finish_reason)).toEqual(
      ["length"],
    );
  });

  it("streams tokens one by one", async () => {
    const chunks = await stream({ max_tokens: 8 });
    // Role chunk, then content chunks, then the finish chunk: more than a couple of pieces.
    expect(chunks.filter((c) => (c.choices[0]?.delta.content ?? "") !== "").length).toBeGreaterThan(3);
  });

  it("is reproducible for a seed and differs across seeds", async () => {
    const a = await chat({ seed: 1234, temperature: 1, max_tokens: 16 });
    const b = await chat({ seed: 1234, temperature: 1, max_tokens: 16 });
    expect(text(b)).toBe(text(a));
    const texts = await Promise.all(
      [1, 2, 3, 4].map(async (seed) => text(await chat({ seed, temperature: 1, max_tokens: 16 }))),
    );
    expect(new Set(texts).size).toBeGreaterThan(1);
  });

  it("is deterministic at temperature 0", async () => {
    const a = await chat({ temperature: 0, max_tokens: 16 });
    const b = await chat({ temperature: 0, max_tokens: 16 });
    expect(text(b)).toBe(text(a));
  });

  it("answers n=3 with three finished choices and their tokens counted", async () => {
    const completion = await chat({ n: 3, max_tokens: 6 });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    for (const choice of completion.choices) expect(choice.finish_reason).toBe("length");
    expect(completion.usage?.completion_tokens).toBe(18);
    const chunks = await stream({ n: 3, max_tokens: 5, stream_options: { include_usage: true } });
    expect(new Set(chunks.flatMap((c) => c.choices.map((x) => x.index)))).toEqual(new Set([0, 1, 2]));
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(15);
  });

  it("ends the text before a stop string with finish_reason stop", async () => {
    const params = { seed: 42, temperature: 1, max_tokens: 16 };
    const full = text(await chat(params));
    const from = full
      .split("")
      .findIndex((_, i) => i >= full.length / 2 && full.slice(i, i + 3).trim().length === 3);
    const stop = full.slice(from, from + 3);
    const stopped = await chat({ ...params, stop: [stop] });
    expect(stopped.choices[0]?.finish_reason).toBe("stop");
    expect(text(stopped)).toBe(full.slice(0, full.indexOf(stop)));
  });

  it("returns logprobs from the model's own distribution, exactly top_logprobs alternatives, spelling the content", async () => {
    const completion = await chat({ logprobs: true, top_logprobs: 3, max_tokens: 8, seed: 3 });
    const content = completion.choices[0]?.logprobs?.content ?? [];
    expect(content).toHaveLength(8);
    for (const entry of content) {
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.bytes).toEqual([...Buffer.from(entry.token, "utf8")]);
      expect(entry.top_logprobs).toHaveLength(3);
      const tops = entry.top_logprobs.map((top) => top.logprob);
      expect(tops).toEqual([...tops].sort((a, b) => b - a));
      expect(entry.logprob).toBeLessThanOrEqual((tops[0] ?? 0) + 1e-6);
    }
    expect(content.map((e) => e.token).join("")).toBe(text(completion));
    const none = await chat({ logprobs: true, max_tokens: 3 });
    for (const entry of none.choices[0]?.logprobs?.content ?? []) expect(entry.top_logprobs).toEqual([]);
    const twenty = await chat({ logprobs: true, top_logprobs: 20, top_p: 0.01, max_tokens: 2 });
    for (const entry of twenty.choices[0]?.logprobs?.content ?? [])
      expect(entry.top_logprobs).toHaveLength(20);
  });

  it("reports the same log probabilities whatever the temperature", async () => {
    const first = async (temperature: number) => {
      const completion = await chat({ temperature, logprobs: true, top_logprobs: 1, max_tokens: 1 });
      return completion.choices[0]?.logprobs?.content?.[0]?.top_logprobs[0]?.logprob ?? Number.NaN;
    };
    expect(await first(1)).toBeCloseTo(await first(0), 3);
  });

  it("streams logprobs with each content chunk", async () => {
    const chunks = await stream({ logprobs: true, top_logprobs: 2, max_tokens: 6 });
    const entries = chunks.flatMap((c) => c.choices.flatMap((choice) => choice.logprobs?.content ?? []));
    expect(entries).toHaveLength(6);
    expect(entries.map((e) => e.token).join("")).toBe(streamed(chunks));
  });

  it("reports cached prompt tokens when a request extends the previous conversation", async () => {
    const system = {
      role: "system" as const,
      content: `You are a careful assistant for test ${Date.now()}.`,
    };
    const first = await chat({ messages: [system, { role: "user", content: "Tell me a story." }] });
    const second = await chat({
      messages: [
        system,
        { role: "user", content: "Tell me a story." },
        { role: "assistant", content: text(first) },
        { role: "user", content: "And another one." },
      ],
    });
    const cached = second.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    expect(cached).toBeGreaterThan(0);
    expect(cached).toBeGreaterThanOrEqual((first.usage?.prompt_tokens ?? 0) - 1);
    expect(cached).toBeLessThan(second.usage?.prompt_tokens ?? 0);
  });

  it("stops generating in llama-server when the client goes away mid-stream, and serves the next request", async () => {
    const engine = engineOf(t);
    const controller = new AbortController();
    const s = await t.client.chat.completions.create(
      { model: TINY_MODEL, messages: hello, max_tokens: 400, stream: true },
      { signal: controller.signal },
    );
    let seen = 0;
    try {
      for await (const _ of s) {
        if (++seen === 3) controller.abort();
      }
    } catch {
      // the abort
    }
    // Our slot is free at once, and llama-server's slot stops processing.
    const deadline = Date.now() + 5_000;
    for (;;) {
      const slots = await engine.slotsInfo();
      if (slots.every((slot) => !slot.is_processing) && engine.stats().busySlots === 0) break;
      if (Date.now() > deadline) throw new Error(`slots still busy: ${JSON.stringify(slots)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const next = await chat({ max_tokens: 4 });
    expect(next.usage?.completion_tokens).toBe(4);
  });

  it("tokenizes prompts exactly like the in-process engine", async () => {
    const inProcess = await startTestServer({ model: { engine: "in-process" } });
    try {
      const messages = [
        { role: "system" as const, content: "Be brief.\nReally." },
        { role: "user" as const, content: "  Hello there, <|im_start|> not special  " },
        { role: "assistant" as const, content: "Hi!" },
        { role: "user" as const, content: "\nOnce more: ünïcödé 中文 🙂" },
      ];
      const a = await chat({ messages, max_tokens: 1 });
      const b = await inProcess.client.chat.completions.create({
        model: TINY_MODEL,
        messages,
        max_tokens: 1,
      });
      expect(a.usage?.prompt_tokens).toBe(b.usage?.prompt_tokens);
    } finally {
      await inProcess.stop();
    }
  });
});

describe.skipIf(!binary)("quantized models on the llama-server engine", () => {
  // A Q8_0 model crashed a -march=native build on AMX CPUs (ggml's AMX kernels): engine build
  // leaves AMX out, and this keeps it that way.
  it("serves a Q8_0 model", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "sb-q8-")), "tiny-q8_0.gguf");
    await makeModel({ preset: "tiny", out: path, weightType: "q8_0", seed: 7 });
    const t = await startTestServer({
      config: { engines: { llama_server: { binary } } },
      model: { engine: "llama-server", source: path },
    });
    try {
      const completion = await t.client.chat.completions.create({
        model: TINY_MODEL,
        messages: hello,
        max_tokens: 8,
      });
      expect(completion.usage?.completion_tokens).toBe(8);
    } finally {
      await t.stop();
    }
  });
});
