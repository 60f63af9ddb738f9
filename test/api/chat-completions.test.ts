import OpenAI, { BadRequestError, NotFoundError } from "openai";
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_ALIAS, TINY_MODEL } from "../helpers/test-server.js";

/** Generation is real (a tiny random-weight model): every request keeps max_tokens small. */
const MAX = 12;
const hello = [{ role: "user" as const, content: "Hello there" }];

describe("POST /v1/chat/completions through the official SDK", () => {
  let t: TestServer;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startTestServer();
    client = t.client;
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function chat(params: Partial<ChatCompletionCreateParamsNonStreaming> = {}): Promise<ChatCompletion> {
    const completion = await client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: MAX,
      ...params,
    });
    expectMatchesSchema(completion, "CreateChatCompletionResponse");
    return completion;
  }

  /** Sends a request the SDK's types would not let through (unknown fields, wrong types). */
  function chatUntyped(body: Record<string, unknown>): Promise<ChatCompletion> {
    return client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: MAX,
      ...body,
    } as unknown as ChatCompletionCreateParamsNonStreaming);
  }

  function text(completion: ChatCompletion, choice = 0): string {
    return completion.choices[choice]?.message.content ?? "";
  }

  describe("a plain completion", () => {
    it("answers with a chat.completion the SDK parses and the spec accepts", async () => {
      const before = Math.floor(Date.now() / 1000);
      const completion = await chat();
      expect(completion.id).toMatch(/^chatcmpl-/);
      expect(completion.object).toBe("chat.completion");
      expect(completion.created).toBeGreaterThanOrEqual(before - 1);
      expect(completion.created).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 1);
      expect(completion.model).toBe(TINY_MODEL);
      expect(typeof completion.system_fingerprint).toBe("string");
      expect(completion.system_fingerprint?.length).toBeGreaterThan(0);
      expect(completion.choices).toHaveLength(1);
      const [choice] = completion.choices;
      expect(choice?.index).toBe(0);
      expect(choice?.message.role).toBe("assistant");
      expect(typeof choice?.message.content).toBe("string");
      expect(choice?.message.refusal).toBeNull();
      expect(choice?.logprobs).toBeNull();
      expect(choice?.finish_reason).toBe("length");
    });

    it("reports usage with prompt, completion, total and cached token counts", async () => {
      const { usage } = await chat();
      expect(usage).toBeDefined();
      if (!usage) return;
      expect(usage.prompt_tokens).toBeGreaterThan(0);
      expect(usage.completion_tokens).toBe(MAX);
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
      expect(usage.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(0);
      expect(usage.prompt_tokens_details?.cached_tokens).toBeLessThan(usage.prompt_tokens);
      expect(usage.completion_tokens_details?.reasoning_tokens).toBe(0);
    });

    it("echoes the model name as the caller sent it, alias included", async () => {
      const completion = await chat({ model: TINY_ALIAS });
      expect(completion.model).toBe(TINY_ALIAS);
    });

    it("gives every completion its own id", async () => {
      const [a, b] = await Promise.all([chat({ max_tokens: 2 }), chat({ max_tokens: 2 })]);
      expect(a.id).not.toBe(b.id);
    });

    it("answers an unknown model with NotFoundError 404 model_not_found naming param model", async () => {
      const err = await chat({ model: "no-such-model" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      const notFound = err as NotFoundError;
      expect(notFound.status).toBe(404);
      expect(notFound.code).toBe("model_not_found");
      expect(notFound.param).toBe("model");
      expectMatchesSchema({ error: notFound.error }, "ErrorResponse");
    });
  });

  describe("length limits", () => {
    it("stops at max_tokens with finish_reason length and exactly that many completion tokens", async () => {
      const completion = await chat({ max_tokens: 5 });
      expect(completion.choices[0]?.finish_reason).toBe("length");
      expect(completion.usage?.completion_tokens).toBe(5);
    });

    it("honours max_completion_tokens the same way", async () => {
      const completion = await chat({ max_tokens: undefined, max_completion_tokens: 7 });
      expect(completion.choices[0]?.finish_reason).toBe("length");
      expect(completion.usage?.completion_tokens).toBe(7);
    });

    it("answers a prompt longer than the context with 400 context_length_exceeded", async () => {
      const long = Array.from({ length: 800 }, (_, i) => `word${i}`).join(" ");
      const err = await chat({ messages: [{ role: "user", content: long }] }).catch((e: unknown) => e);
      expectBadRequest(err, "messages");
      expect((err as BadRequestError).code).toBe("context_length_exceeded");
      expect((err as BadRequestError).message).toContain("512");
    });

    it("answers max_tokens beyond the room left in the context with 400 context_length_exceeded", async () => {
      const err = await chat({ max_tokens: 600 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).code).toBe("context_length_exceeded");
      expectMatchesSchema({ error: (err as BadRequestError).error }, "ErrorResponse");
    });
  });

  describe("sampling", () => {
    it("gives the same text for the same seed at temperature 1", async () => {
      const a = await chat({ seed: 1234, temperature: 1, max_tokens: 16 });
      const b = await chat({ seed: 1234, temperature: 1, max_tokens: 16 });
      expect(text(a).length).toBeGreaterThan(0);
      expect(text(b)).toBe(text(a));
    });

    it("gives different texts for different seeds", async () => {
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

    it("ends the text before a stop string with finish_reason stop", async () => {
      const params = { seed: 42, temperature: 1, max_tokens: 16 };
      const full = text(await chat(params));
      // A stop string from the middle of the output: the rerun must end right before its first use.
      const stop = stopStringFrom(full);
      const stopped = await chat({ ...params, stop: [stop, "never-appears-here"] });
      expect(stopped.choices[0]?.finish_reason).toBe("stop");
      expect(text(stopped)).toBe(full.slice(0, full.indexOf(stop)));
      expect(text(stopped)).not.toContain(stop);
      expect(stopped.usage?.completion_tokens).toBeLessThan(16);
    });

    it("accepts a single stop string", async () => {
      const completion = await chat({ stop: "zzzzzzzz" });
      expect(completion.choices[0]?.finish_reason).toBe("length");
    });

    it("answers n=3 with three choices indexed 0..2, each finished", async () => {
      const completion = await chat({ n: 3, max_tokens: 6 });
      expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
      for (const choice of completion.choices) {
        expect(choice.finish_reason).toBe("length");
        expect(choice.message.role).toBe("assistant");
        expect(typeof choice.message.content).toBe("string");
      }
      expect(completion.usage?.completion_tokens).toBe(18);
    });

    it("puts the logprobs of each of n choices on that choice", async () => {
      const completion = await chat({ n: 2, logprobs: true, top_logprobs: 1, max_tokens: 3 });
      for (const choice of completion.choices) {
        expect(choice.logprobs?.content).toHaveLength(3);
        expect(choice.logprobs?.content?.map((e) => e.token).join("")).toBe(choice.message.content);
      }
    });

    // A request runs at most `slots` choices at once, so n far above slots + max_queue (2 + 64
    // here) is served in waves instead of being refused as overload.
    it("serves n=128, the documented maximum, on an idle server or refuses it as a 400 naming n", async () => {
      const outcome = await chat({ n: 128, max_tokens: 1 }).catch((e: unknown) => e);
      if (outcome instanceof OpenAI.APIError) {
        expect(outcome.status).toBe(400);
        expect(outcome.param).toBe("n");
      } else {
        expect((outcome as ChatCompletion).choices).toHaveLength(128);
      }
    });

    it("accepts top_p, penalties and a logit_bias within the vocabulary", async () => {
      const completion = await chat({
        top_p: 0.9,
        presence_penalty: 0.5,
        frequency_penalty: -0.5,
        logit_bias: { "300": 5, "301": -100 },
        user: "someone",
      });
      expect(completion.choices[0]?.finish_reason).toBe("length");
    });
  });

  describe("log probabilities", () => {
    it("returns token logprobs with exactly top_logprobs alternatives, most likely first", async () => {
      const completion = await chat({ logprobs: true, top_logprobs: 3, max_tokens: 8 });
      const content = completion.choices[0]?.logprobs?.content;
      expect(content).toHaveLength(8);
      for (const entry of content ?? []) {
        expect(typeof entry.token).toBe("string");
        expect(entry.logprob).toBeLessThanOrEqual(0);
        expect(entry.bytes).toEqual([...Buffer.from(entry.token, "utf8")]);
        expect(entry.top_logprobs).toHaveLength(3);
        const tops = entry.top_logprobs.map((top) => top.logprob);
        expect(tops).toEqual([...tops].sort((a, b) => b - a));
        for (const top of entry.top_logprobs) {
          expect(top.logprob).toBeLessThanOrEqual(0);
          expect(Array.isArray(top.bytes)).toBe(true);
        }
        // The sampled token is never more likely than the most likely alternative.
        expect(entry.logprob).toBeLessThanOrEqual((tops[0] ?? 0) + 1e-6);
      }
      expect(completion.choices[0]?.logprobs?.refusal).toBeNull();
    });

    it("returns logprobs with no alternatives when top_logprobs is not given", async () => {
      const completion = await chat({ logprobs: true, max_tokens: 4 });
      const content = completion.choices[0]?.logprobs?.content ?? [];
      expect(content).toHaveLength(4);
      for (const entry of content) expect(entry.top_logprobs).toEqual([]);
    });

    it("returns top_logprobs 20 alternatives at the documented maximum", async () => {
      const completion = await chat({ logprobs: true, top_logprobs: 20, max_tokens: 2 });
      for (const entry of completion.choices[0]?.logprobs?.content ?? []) {
        expect(entry.top_logprobs).toHaveLength(20);
      }
    });

    it("returns logprobs whose tokens spell the message content", async () => {
      const completion = await chat({ logprobs: true, max_tokens: 8, seed: 3 });
      const tokens = completion.choices[0]?.logprobs?.content?.map((e) => e.token) ?? [];
      expect(tokens.join("")).toBe(text(completion));
    });

    // Alternatives come from the model's whole distribution, not what top_p leaves for sampling.
    it("returns exactly top_logprobs alternatives even with a small top_p", async () => {
      const completion = await chat({ top_p: 0.01, logprobs: true, top_logprobs: 5, max_tokens: 3 });
      for (const entry of completion.choices[0]?.logprobs?.content ?? []) {
        expect(entry.top_logprobs).toHaveLength(5);
      }
    });

    // Reported log probabilities are the model's own, independent of temperature and truncation.
    it("reports the model's log probabilities whatever the sampling settings", async () => {
      const first = async (temperature: number) => {
        const completion = await chat({ temperature, logprobs: true, top_logprobs: 1, max_tokens: 1 });
        return completion.choices[0]?.logprobs?.content?.[0]?.top_logprobs[0]?.logprob ?? Number.NaN;
      };
      expect(await first(1)).toBeCloseTo(await first(0), 3);
    });

    it("returns logprobs null when logprobs is false", async () => {
      const completion = await chat({ logprobs: false, max_tokens: 4 });
      expect(completion.choices[0]?.logprobs).toBeNull();
    });
  });

  describe("prompt caching", () => {
    it("reports cached tokens when a request extends the previous conversation", async () => {
      const system = {
        role: "system" as const,
        content: `You are a careful assistant for test ${Date.now()}. Answer briefly and kindly.`,
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
      // At least the first request's prompt is reused, and never the whole of the new one.
      expect(cached).toBeGreaterThanOrEqual((first.usage?.prompt_tokens ?? 0) - 1);
      expect(cached).toBeLessThan(second.usage?.prompt_tokens ?? 0);
    });
  });

  describe("messages", () => {
    it("accepts system, developer, user, assistant and tool roles", async () => {
      const completion = await chat({
        messages: [
          { role: "system", content: "Be brief." },
          { role: "developer", content: "Answer in English." },
          { role: "user", content: "What is two plus two?", name: "alice" },
          {
            role: "assistant",
            content: "Let me check.",
            tool_calls: [
              { id: "call_1", type: "function", function: { name: "add", arguments: '{"a":2,"b":2}' } },
            ],
          },
          { role: "tool", content: "4", tool_call_id: "call_1" },
          { role: "user", content: "Well?" },
        ],
      });
      expect(completion.choices[0]?.message.role).toBe("assistant");
    });

    it("accepts text content parts in user, system and assistant messages", async () => {
      const completion = await chat({
        messages: [
          { role: "system", content: [{ type: "text", text: "Be brief." }] },
          {
            role: "user",
            content: [
              { type: "text", text: "Hello" },
              { type: "text", text: " there" },
            ],
          },
          { role: "assistant", content: [{ type: "text", text: "Hi." }] },
          { role: "user", content: "Again" },
        ],
      });
      expect(completion.choices[0]?.finish_reason).toBe("length");
    });

    it("accepts an assistant message with null content", async () => {
      const completion = await chat({
        messages: [
          { role: "user", content: "Hi" },
          { role: "assistant", content: null },
          { role: "user", content: "Hi again" },
        ],
      });
      expect(completion.choices).toHaveLength(1);
    });
  });

  describe("invalid requests answer BadRequestError naming the param", () => {
    const cases: { name: string; body: Record<string, unknown>; param: string; code?: string }[] = [
      { name: "temperature 3", body: { temperature: 3 }, param: "temperature" },
      { name: "temperature -1", body: { temperature: -1 }, param: "temperature" },
      { name: "top_p 1.5", body: { top_p: 1.5 }, param: "top_p" },
      { name: "n 0", body: { n: 0 }, param: "n" },
      { name: "n 129", body: { n: 129 }, param: "n" },
      { name: "n 1.5", body: { n: 1.5 }, param: "n" },
      { name: "top_logprobs 21", body: { logprobs: true, top_logprobs: 21 }, param: "top_logprobs" },
      { name: "top_logprobs without logprobs", body: { top_logprobs: 2 }, param: "top_logprobs" },
      { name: "stop with 5 entries", body: { stop: ["a", "b", "c", "d", "e"] }, param: "stop" },
      { name: "max_tokens 0", body: { max_tokens: 0 }, param: "max_tokens" },
      { name: "max_completion_tokens 0", body: { max_completion_tokens: 0 }, param: "max_completion_tokens" },
      { name: "presence_penalty 3", body: { presence_penalty: 3 }, param: "presence_penalty" },
      { name: "frequency_penalty -3", body: { frequency_penalty: -3 }, param: "frequency_penalty" },
      { name: "empty messages", body: { messages: [] }, param: "messages" },
      { name: "missing messages", body: { messages: undefined }, param: "messages" },
      { name: "missing model", body: { model: undefined }, param: "model" },
      {
        name: "an unknown role",
        body: { messages: [{ role: "wizard", content: "hi" }] },
        param: "messages[0].role",
      },
      {
        name: "content of the wrong type",
        body: { messages: [{ role: "user", content: 42 }] },
        param: "messages[0].content",
      },
      {
        name: "stream_options without stream",
        body: { stream_options: { include_usage: true } },
        param: "stream_options",
      },
      {
        name: "logit_bias with a token id beyond the vocabulary",
        body: { logit_bias: { "999999": 5 } },
        param: "logit_bias",
      },
      {
        name: "logit_bias with a key that is not a token id",
        body: { logit_bias: { hello: 5 } },
        param: "logit_bias.hello",
      },
      { name: "logit_bias value 101", body: { logit_bias: { "10": 101 } }, param: "logit_bias.10" },
    ];

    for (const c of cases) {
      it(`refuses ${c.name}`, async () => {
        const err = await chatUntyped(c.body).catch((e: unknown) => e);
        expectBadRequest(err, c.param);
        if (c.code) expect((err as BadRequestError).code).toBe(c.code);
      });
    }

    it("refuses an unknown top-level field and names it", async () => {
      const err = await chatUntyped({ frobnicate: true }).catch((e: unknown) => e);
      expectBadRequest(err, "frobnicate");
      expect((err as BadRequestError).message).toContain("frobnicate");
    });

    it("refuses an image_url part, saying the model does not support image input", async () => {
      const err = await chat({
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What is this?" },
              { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
            ],
          },
        ],
      }).catch((e: unknown) => e);
      expectBadRequest(err, "messages[0].content[1]");
      expect((err as BadRequestError).message).toMatch(/does not support image input/);
    });
  });

  describe("response headers", () => {
    it("sends x-request-id, matching the SDK's _request_id, and openai-processing-ms", async () => {
      const { response, request_id } = await client.chat.completions
        .create({ model: TINY_MODEL, messages: hello, max_tokens: 2 })
        .withResponse();
      const id = response.headers.get("x-request-id");
      expect(id).toBeTruthy();
      expect(request_id).toBe(id);
      const sent = "conformance-request-1";
      const completion = await client.chat.completions.create(
        { model: TINY_MODEL, messages: hello, max_tokens: 2 },
        { headers: { "x-request-id": sent } },
      );
      expect(completion._request_id).toBe(sent);
      expect(response.headers.get("openai-processing-ms")).toMatch(/^\d+(\.\d+)?$/);
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    });

    it("gives each request its own x-request-id", async () => {
      const ids = await Promise.all(
        [1, 2].map(async () => {
          const response = await client.chat.completions
            .create({ model: TINY_MODEL, messages: hello, max_tokens: 1 })
            .asResponse();
          return response.headers.get("x-request-id");
        }),
      );
      expect(ids[0]).not.toBe(ids[1]);
    });

    it("echoes a sane client-sent x-request-id", async () => {
      const sent = "client-req_123.abc:9";
      const response = await client.chat.completions
        .create({ model: TINY_MODEL, messages: hello, max_tokens: 1 }, { headers: { "x-request-id": sent } })
        .asResponse();
      expect(response.headers.get("x-request-id")).toBe(sent);
    });

    it("replaces a client-sent x-request-id that is too long or has odd characters", async () => {
      for (const sent of ["x".repeat(300), "has spaces and <angle> brackets"]) {
        const response = await client.chat.completions
          .create(
            { model: TINY_MODEL, messages: hello, max_tokens: 1 },
            { headers: { "x-request-id": sent } },
          )
          .asResponse();
        const id = response.headers.get("x-request-id");
        expect(id).toBeTruthy();
        expect(id).not.toBe(sent);
        expect(id?.length).toBeLessThanOrEqual(128);
      }
    });

    it("sends x-request-id and openai-processing-ms on errors too", async () => {
      const err = (await chatUntyped({ temperature: 3 }).catch((e: unknown) => e)) as BadRequestError;
      expect(err).toBeInstanceOf(BadRequestError);
      expect(err.requestID).toBeTruthy();
      expect(err.headers.get("x-request-id")).toBe(err.requestID);
      expect(err.headers.get("openai-processing-ms")).toMatch(/^\d+(\.\d+)?$/);
    });
  });
});

/** A 400 as the SDK surfaces it: BadRequestError, the right param, an envelope the spec accepts. */
function expectBadRequest(err: unknown, param: string): void {
  expect(err).toBeInstanceOf(BadRequestError);
  const bad = err as BadRequestError;
  expect(bad.status).toBe(400);
  expect(bad.type).toBe("invalid_request_error");
  expect(bad.param).toBe(param);
  expect(bad.message.length).toBeGreaterThan(0);
  expect(bad.headers.get("content-type")).toMatch(/^application\/json/);
  expectMatchesSchema({ error: bad.error }, "ErrorResponse");
}

/** Three characters from the middle of `text` that are not all whitespace, to use as a stop string. */
function stopStringFrom(text: string): string {
  for (let from = Math.floor(text.length / 2); from + 3 <= text.length; from++) {
    const stop = text.slice(from, from + 3);
    if (stop.trim().length > 0) return stop;
  }
  throw new Error(`no usable stop string in ${JSON.stringify(text)}`);
}
