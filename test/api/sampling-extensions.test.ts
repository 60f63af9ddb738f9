import { BadRequestError } from "openai";
import type {
  ChatCompletion,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** The tiny model with an operator's default truncation: only the likeliest token is ever sampled. */
const TOP_K_1_MODEL = "tiny-top-k-1";
const hello = [{ role: "user" as const, content: "Tell me a story" }];

/** top_k, min_p and repetition_penalty: extensions (vLLM's names) that trade exactness for speed when asked. */
describe("sampling extensions and per-model sampling defaults", () => {
  let t: TestServer;
  let engine: string;
  beforeAll(async () => {
    t = await startTestServer({
      extraModels: [{ id: TOP_K_1_MODEL, sampling_defaults: { top_k: 1 }, parallel: 2 }],
    });
    const backend = t.server.registry.resolve(TINY_MODEL).backend as LocalBackend;
    engine = (backend.engine as { engineName?: string }).engineName ?? "in-process";
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function chat(params: Record<string, unknown>, model = TINY_MODEL): Promise<ChatCompletion> {
    const completion = await t.client.chat.completions.create({
      model,
      messages: hello,
      max_tokens: 12,
      ...(params as Partial<ChatCompletionCreateParamsNonStreaming>),
    });
    expectMatchesSchema(completion, "CreateChatCompletionResponse");
    return completion;
  }
  const text = (c: ChatCompletion) => c.choices[0]?.message.content ?? "";

  it("answers top_k 1 and min_p 1 with the greedy answer at any temperature and seed", async () => {
    const greedy = text(await chat({ temperature: 0 }));
    for (const seed of [1, 2, 3]) {
      expect(text(await chat({ temperature: 1.5, seed, top_k: 1 }))).toBe(greedy);
      expect(text(await chat({ temperature: 1.2, seed, min_p: 1 }))).toBe(greedy);
    }
    // Truncations change nothing at temperature 0.
    expect(text(await chat({ temperature: 0, top_k: 50, min_p: 0.3, top_p: 0.5 }))).toBe(greedy);
  });

  it("samples from every token when top_k is 0 or -1 (vLLM's 'off')", async () => {
    const texts = await Promise.all(
      [1, 2, 3, 4].map(async (seed) => text(await chat({ temperature: 1, seed, top_k: -1 }))),
    );
    expect(new Set(texts).size).toBeGreaterThan(1);
    expect(text(await chat({ temperature: 1, seed: 9, top_k: 0 }))).toBe(
      text(await chat({ temperature: 1, seed: 9 })),
    );
  });

  it("applies repetition_penalty: 1 is no penalty, a strong one changes the greedy answer", async () => {
    const greedy = text(await chat({ temperature: 0, max_tokens: 24 }));
    expect(text(await chat({ temperature: 0, max_tokens: 24, repetition_penalty: 1 }))).toBe(greedy);
    expect(text(await chat({ temperature: 0, max_tokens: 24, repetition_penalty: 5 }))).not.toBe(greedy);
  });

  it("uses the model's sampling_defaults when a request leaves them out, and the request's own when given", async () => {
    const greedy = text(await chat({ temperature: 0 }, TOP_K_1_MODEL));
    for (const seed of [1, 2, 3])
      expect(text(await chat({ temperature: 1, seed }, TOP_K_1_MODEL))).toBe(greedy);
    const own = await Promise.all(
      [1, 2, 3, 4].map(async (seed) => text(await chat({ temperature: 1, seed, top_k: 0 }, TOP_K_1_MODEL))),
    );
    expect(new Set(own).size).toBeGreaterThan(1);
  });

  it("takes the extensions on legacy completions too", async () => {
    const greedy = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Once",
      max_tokens: 8,
      temperature: 0,
    });
    const topK = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Once",
      max_tokens: 8,
      temperature: 1.5,
      seed: 5,
      top_k: 1,
    } as Parameters<typeof t.client.completions.create>[0] & { top_k: number });
    expect((topK as { choices: { text: string }[] }).choices[0]?.text).toBe(greedy.choices[0]?.text);
  });

  it("refuses values outside their ranges with the parameter named", async () => {
    for (const [param, value] of [
      ["top_k", 1.5],
      ["top_k", -2],
      ["min_p", 1.5],
      ["repetition_penalty", 0],
      ["repetition_penalty", 11],
    ] as const) {
      const err = await chat({ [param]: value }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadRequestError);
      expect((err as BadRequestError).param).toBe(param);
    }
  });

  it("combines repetition_penalty with logprobs on llama-server, and says it cannot on node-llama-cpp", async () => {
    const request = chat({ temperature: 0, repetition_penalty: 1.5, logprobs: true, top_logprobs: 2 });
    if (engine === "llama-server") {
      const completion = await request;
      expect(completion.choices[0]?.logprobs?.content?.length).toBeGreaterThan(0);
      return;
    }
    const err = (await request.catch((e: unknown) => e)) as BadRequestError;
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.param).toBe("repetition_penalty");
    expect(err.code).toBe("unsupported_parameter");
  });
});
