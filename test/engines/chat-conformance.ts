import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { expect, it } from "vitest";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/**
 * The chat conformance behaviour every engine process must show, whatever runs the model: a
 * representative subset of test/api (SWITCHBOARD_TEST_ENGINE=<engine> runs all of test/api on
 * one engine). Called inside an engine's describe block, with its running server.
 */
export interface EngineUnderTest {
  engine: "llama-server" | "runner";
  /** Whether the engine process itself has stopped generating (its own view, not our scheduler's). */
  engineIdle(t: TestServer): Promise<{ idle: boolean; detail: unknown }>;
}

const hello = [{ role: "user" as const, content: "Hello there" }];

/** Chat requests to the tiny model, every response and chunk checked against the OpenAI spec. */
export function chatHelpers(t: () => TestServer) {
  async function chat(params: Partial<ChatCompletionCreateParamsNonStreaming> = {}): Promise<ChatCompletion> {
    const completion = await t().client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 12,
      ...params,
    });
    expectMatchesSchema(completion, "CreateChatCompletionResponse");
    return completion;
  }

  async function stream(params: Record<string, unknown> = {}): Promise<ChatCompletionChunk[]> {
    const s = await t().client.chat.completions.create({
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

  return { chat, stream };
}

/** The content of a choice of a completion. */
export const text = (c: ChatCompletion, i = 0) => c.choices[i]?.message.content ?? "";

/** The content of a choice of a stream, its deltas joined. */
export const streamed = (chunks: ChatCompletionChunk[], i = 0) =>
  chunks.flatMap((c) => c.choices.filter((x) => x.index === i).map((x) => x.delta.content ?? "")).join("");

export function chatConformance(t: () => TestServer, target: EngineUnderTest): void {
  const { chat, stream } = chatHelpers(t);

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

  it(`stops generating in ${target.engine} when the client goes away mid-stream, and serves the next request`, async () => {
    const controller = new AbortController();
    const s = await t().client.chat.completions.create(
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
    // Our slot is free at once, and the engine process stops generating too.
    const deadline = Date.now() + 5_000;
    for (;;) {
      const state = await target.engineIdle(t());
      if (state.idle) break;
      if (Date.now() > deadline) throw new Error(`still generating: ${JSON.stringify(state.detail)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const next = await chat({ max_tokens: 4 });
    expect(next.usage?.completion_tokens).toBe(4);
  });
}
