import type OpenAI from "openai";
import { BadRequestError, NotFoundError } from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
} from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectMatchesSchema, specAvailable } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_ALIAS, TINY_MODEL } from "../helpers/test-server.js";

/** Generation is real (a tiny random-weight model): every request keeps max_tokens small. */
const MAX = 10;
const hello = [{ role: "user" as const, content: "Hello there" }];

describe("streamed chat completions through the official SDK", () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startTestServer();
    client = t.client;
  });
  afterAll(async () => {
    await t?.stop();
  });

  function params(extra: Partial<ChatCompletionCreateParamsStreaming> = {}) {
    return { model: TINY_MODEL, messages: hello, max_tokens: MAX, ...extra, stream: true as const };
  }

  /** Streams with create({ stream: true }), checking every chunk against the spec. */
  async function collect(extra: Partial<ChatCompletionCreateParamsStreaming> = {}) {
    const stream = await client.chat.completions.create(params(extra));
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) {
      expectMatchesSchema(chunk, "CreateChatCompletionStreamResponse");
      chunks.push(chunk);
    }
    return chunks;
  }

  /** Per choice index: its chunks' deltas, text and finish reasons, in order. */
  function byChoice(chunks: ChatCompletionChunk[]) {
    const choices = new Map<
      number,
      { roles: (string | undefined)[]; text: string; finish: (string | null)[] }
    >();
    for (const chunk of chunks) {
      for (const c of chunk.choices) {
        const entry = choices.get(c.index) ?? { roles: [], text: "", finish: [] };
        entry.roles.push(c.delta.role);
        entry.text += c.delta.content ?? "";
        entry.finish.push(c.finish_reason);
        choices.set(c.index, entry);
      }
    }
    return choices;
  }

  function expectWellFormedChoice(
    choice: { roles: (string | undefined)[]; finish: (string | null)[] } | undefined,
    reason: string,
  ) {
    expect(choice).toBeDefined();
    if (!choice) return;
    // The first chunk of a choice carries the role; later ones do not repeat it.
    expect(choice.roles[0]).toBe("assistant");
    expect(choice.roles.slice(1).every((r) => r === undefined)).toBe(true);
    // Only the last chunk of a choice carries its finish_reason.
    expect(choice.finish.at(-1)).toBe(reason);
    expect(choice.finish.slice(0, -1).every((f) => f === null)).toBe(true);
  }

  describe("with create({ stream: true })", () => {
    it("streams chat.completion.chunk events sharing one id, role first, finish_reason last", async () => {
      const before = Math.floor(Date.now() / 1000);
      const chunks = await collect();
      expect(chunks.length).toBeGreaterThan(2);
      const [first] = chunks;
      expect(first?.id).toMatch(/^chatcmpl-/);
      for (const chunk of chunks) {
        expect(chunk.id).toBe(first?.id);
        expect(chunk.object).toBe("chat.completion.chunk");
        expect(chunk.created).toBe(first?.created);
        expect(chunk.model).toBe(TINY_MODEL);
        expect(chunk.system_fingerprint).toBe(first?.system_fingerprint);
        expect(chunk.choices).toHaveLength(1);
        // No usage unless stream_options.include_usage asks for it.
        expect(chunk.usage ?? null).toBeNull();
      }
      expect(first?.created).toBeGreaterThanOrEqual(before - 1);
      expect(typeof first?.system_fingerprint).toBe("string");
      const choice = byChoice(chunks).get(0);
      expectWellFormedChoice(choice, "length");
      expect(choice?.text.length).toBeGreaterThan(0);
    });

    it("streams the same text as the non-streamed completion for the same seed", async () => {
      const request = { model: TINY_MODEL, messages: hello, max_tokens: MAX, seed: 77, temperature: 1 };
      const whole = await client.chat.completions.create(request);
      const chunks = await collect({ seed: 77, temperature: 1 });
      expect(byChoice(chunks).get(0)?.text).toBe(whole.choices[0]?.message.content);
    });

    it("echoes the model name as the caller sent it, alias included", async () => {
      const chunks = await collect({ model: TINY_ALIAS, max_tokens: 2 });
      for (const chunk of chunks) expect(chunk.model).toBe(TINY_ALIAS);
    });

    it("ends with a usage chunk with empty choices when include_usage is set; other chunks carry usage null", async () => {
      const chunks = await collect({ stream_options: { include_usage: true }, max_tokens: 6 });
      const last = chunks.at(-1);
      expect(last?.choices).toEqual([]);
      expect(last?.usage).toMatchObject({ completion_tokens: 6 });
      expect(last?.usage?.prompt_tokens).toBeGreaterThan(0);
      expect(last?.usage?.total_tokens).toBe((last?.usage?.prompt_tokens ?? 0) + 6);
      expect(last?.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(0);
      for (const chunk of chunks.slice(0, -1)) {
        expect(chunk.usage).toBeNull();
        expect(chunk.choices.length).toBeGreaterThan(0);
      }
      expectWellFormedChoice(byChoice(chunks).get(0), "length");
    });

    it("sends no usage chunk when include_usage is false", async () => {
      const chunks = await collect({ stream_options: { include_usage: false }, max_tokens: 3 });
      for (const chunk of chunks) {
        expect(chunk.choices.length).toBeGreaterThan(0);
        expect(chunk.usage ?? null).toBeNull();
      }
    });

    it("streams n=3 choices indexed 0..2, each with its role first and a finish_reason", async () => {
      const chunks = await collect({ n: 3, max_tokens: 5, stream_options: { include_usage: true } });
      const choices = byChoice(chunks);
      expect([...choices.keys()].sort()).toEqual([0, 1, 2]);
      for (const index of [0, 1, 2]) expectWellFormedChoice(choices.get(index), "length");
      expect(chunks.at(-1)?.usage?.completion_tokens).toBe(15);
    });

    it("stops before a stop string with finish_reason stop", async () => {
      const base = { seed: 4242, temperature: 1, max_tokens: 16 };
      const full = byChoice(await collect(base)).get(0)?.text ?? "";
      const stop = stopStringFrom(full);
      const choice = byChoice(await collect({ ...base, stop })).get(0);
      expectWellFormedChoice(choice, "stop");
      expect(choice?.text).toBe(full.slice(0, full.indexOf(stop)));
    });

    it("streams logprobs with each content chunk when asked", async () => {
      const chunks = await collect({ logprobs: true, top_logprobs: 2, max_tokens: 6 });
      const entries = chunks.flatMap((c) => c.choices.flatMap((choice) => choice.logprobs?.content ?? []));
      expect(entries).toHaveLength(6);
      for (const entry of entries) {
        expect(entry.logprob).toBeLessThanOrEqual(0);
        expect(entry.top_logprobs).toHaveLength(2);
        expect(entry.top_logprobs[0]?.logprob).toBeGreaterThanOrEqual(entry.top_logprobs[1]?.logprob ?? 0);
      }
      expect(entries.map((e) => e.token).join("")).toBe(byChoice(chunks).get(0)?.text);
    });

    it("sends text/event-stream frames ending with data: [DONE]", async () => {
      const response = await client.chat.completions.create(params({ max_tokens: 3 })).asResponse();
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      expect(response.headers.get("x-request-id")).toBeTruthy();
      expect(response.headers.get("openai-processing-ms")).toMatch(/^\d+(\.\d+)?$/);
      const body = await response.text();
      expect(body.endsWith("data: [DONE]\n\n")).toBe(true);
      const events = body
        .split("\n\n")
        .filter((frame) => frame.startsWith("data: ") && frame !== "data: [DONE]")
        .map((frame) => JSON.parse(frame.slice("data: ".length)) as unknown);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) expectMatchesSchema(event, "CreateChatCompletionStreamResponse");
    });

    it("echoes a sane client-sent x-request-id on a stream", async () => {
      const sent = "stream-req-42";
      const { data, response } = await client.chat.completions
        .create(params({ max_tokens: 2 }), { headers: { "x-request-id": sent } })
        .withResponse();
      for await (const _ of data) {
        // drain
      }
      expect(response.headers.get("x-request-id")).toBe(sent);
    });
  });

  describe("with the chat.completions.stream() helper", () => {
    it("emits chunks and accumulates the final completion", async () => {
      const stream = client.chat.completions.stream({ model: TINY_MODEL, messages: hello, max_tokens: MAX });
      const chunks: ChatCompletionChunk[] = [];
      let deltas = "";
      stream.on("content", (delta) => {
        deltas += delta;
      });
      for await (const chunk of stream) {
        expectMatchesSchema(chunk, "CreateChatCompletionStreamResponse");
        chunks.push(chunk);
      }
      const final = await stream.finalChatCompletion();
      expect(final.id).toMatch(/^chatcmpl-/);
      for (const chunk of chunks) expect(chunk.id).toBe(final.id);
      expect(final.choices).toHaveLength(1);
      expect(final.choices[0]?.message.role).toBe("assistant");
      expect(final.choices[0]?.finish_reason).toBe("length");
      expect(final.choices[0]?.message.content).toBe(deltas);
      expect(await stream.finalContent()).toBe(deltas);
      expectWellFormedChoice(byChoice(chunks).get(0), "length");
    });

    it("accumulates n=3 choices and the usage chunk", async () => {
      const stream = client.chat.completions.stream({
        model: TINY_MODEL,
        messages: hello,
        max_tokens: 4,
        n: 3,
        stream_options: { include_usage: true },
      });
      const final = await stream.finalChatCompletion();
      expect(final.choices.map((c) => c.index)).toEqual([0, 1, 2]);
      for (const choice of final.choices) {
        expect(choice.finish_reason).toBe("length");
        expect(choice.message.role).toBe("assistant");
      }
      expect(final.usage?.completion_tokens).toBe(12);
    });
  });

  describe("errors before the stream begins", () => {
    it("answers invalid input with a JSON 400, not a stream", async () => {
      const err = await client.chat.completions
        .create(params({ temperature: 3 }))
        .then(() => undefined)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).param).toBe("temperature");
      expect((err as BadRequestError).headers.get("content-type")).toMatch(/^application\/json/);
      expectMatchesSchema({ error: (err as BadRequestError).error }, "ErrorResponse");
    });

    it("answers an unknown model with 404 model_not_found", async () => {
      const err = await client.chat.completions
        .create(params({ model: "no-such-model" }))
        .then(() => undefined)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as NotFoundError).code).toBe("model_not_found");
      expect((err as NotFoundError).param).toBe("model");
    });

    it("answers a request that does not fit the context with 400 context_length_exceeded", async () => {
      const err = await client.chat.completions
        .create(params({ max_tokens: 600 }))
        .then(() => undefined)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).code).toBe("context_length_exceeded");
      expect((err as BadRequestError).headers.get("content-type")).toMatch(/^application\/json/);
      expectMatchesSchema({ error: (err as BadRequestError).error }, "ErrorResponse");
    });
  });

  it.skipIf(!specAvailable)("has a spec check that rejects malformed completions and chunks", () => {
    const chunk = {
      id: "chatcmpl-1",
      object: "chat.completion.chunk",
      created: 1_700_000_000,
      model: TINY_MODEL,
      choices: [{ index: 0, delta: { content: "hi" }, logprobs: null, finish_reason: null }],
      usage: null,
    };
    expectMatchesSchema(chunk, "CreateChatCompletionStreamResponse");
    const badReason = { ...chunk, choices: [{ ...chunk.choices[0], finish_reason: "done" }] };
    expect(() => expectMatchesSchema(badReason, "CreateChatCompletionStreamResponse")).toThrow(
      /finish_reason/,
    );
    const completion = {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1_700_000_000,
      model: TINY_MODEL,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: "hi", refusal: null },
          logprobs: null,
          finish_reason: "stop",
        },
      ],
    };
    expectMatchesSchema(completion, "CreateChatCompletionResponse");
    const noRefusal = {
      ...completion,
      choices: [{ ...completion.choices[0], message: { role: "assistant", content: "hi" } }],
    };
    expect(() => expectMatchesSchema(noRefusal, "CreateChatCompletionResponse")).toThrow(/refusal/);
  });
});

/** Three characters from the middle of `text` that are not all whitespace, to use as a stop string. */
function stopStringFrom(text: string): string {
  for (let from = Math.floor(text.length / 2); from + 3 <= text.length; from++) {
    const stop = text.slice(from, from + 3);
    if (stop.trim().length > 0) return stop;
  }
  throw new Error(`no usable stop string in ${JSON.stringify(text)}`);
}
