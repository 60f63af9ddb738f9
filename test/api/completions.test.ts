import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** POST /v1/completions, the legacy text API, through the official SDK and raw HTTP. */
describe("legacy completions", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  const post = async (body: Record<string, unknown>) => {
    const res = await fetch(`${t.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: TINY_MODEL, ...body }),
    });
    return { status: res.status, body: (await res.json()) as { error?: { param: string; code: string } } };
  };

  it("completes a string prompt with the shape the spec gives", async () => {
    const completion = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Hello",
      max_tokens: 5,
    });
    expectMatchesSchema(completion, "CreateCompletionResponse");
    expect(completion.object).toBe("text_completion");
    expect(completion.id).toMatch(/^cmpl-/);
    expect(completion.choices).toHaveLength(1);
    expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(5);
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(0);
  });

  it("defaults to 16 tokens, as OpenAI does", async () => {
    const completion = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Once",
      temperature: 0,
    });
    const choice = completion.choices[0];
    if (choice?.finish_reason === "length") expect(completion.usage?.completion_tokens).toBe(16);
    else expect(completion.usage?.completion_tokens).toBeLessThanOrEqual(16);
  });

  it("gives n choices per prompt for every prompt form, numbered prompt × n + i", async () => {
    const tokens = [5, 6, 7, 8];
    for (const prompt of ["one", ["one", "two", "three"], tokens, [tokens, [9, 10]]] as const) {
      const prompts = typeof prompt === "string" || typeof prompt[0] === "number" ? 1 : prompt.length;
      const completion = await t.client.completions.create({
        model: TINY_MODEL,
        prompt: prompt as string,
        n: 2,
        max_tokens: 3,
        seed: 7,
      });
      expect(completion.choices.map((c) => c.index)).toEqual(
        Array.from({ length: prompts * 2 }, (_, i) => i),
      );
      expectMatchesSchema(completion, "CreateCompletionResponse");
    }
  });

  it("counts each prompt's tokens once in usage, whatever n is", async () => {
    const one = await t.client.completions.create({ model: TINY_MODEL, prompt: [[5, 6, 7]], max_tokens: 2 });
    const two = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: [
        [5, 6, 7],
        [8, 9],
      ],
      n: 3,
      max_tokens: 2,
    });
    expect(one.usage?.prompt_tokens).toBe(3);
    expect(two.usage?.prompt_tokens).toBe(5);
  });

  it("is reproducible with a seed", async () => {
    const ask = { model: TINY_MODEL, prompt: "Tell me", max_tokens: 8, seed: 42, temperature: 1 };
    const a = await t.client.completions.create(ask);
    const b = await t.client.completions.create(ask);
    expect(a.choices[0]?.text).toBe(b.choices[0]?.text);
  });

  it("echoes the prompt in front of the completion", async () => {
    const completion = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Echo me:",
      max_tokens: 3,
      echo: true,
    });
    expect(completion.choices[0]?.text.startsWith("Echo me:")).toBe(true);
  });

  it("reports legacy logprobs: tokens, their logprobs, alternatives and text offsets", async () => {
    const completion = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Hi",
      max_tokens: 6,
      logprobs: 2,
    });
    const logprobs = completion.choices[0]?.logprobs;
    const count = logprobs?.tokens?.length ?? 0;
    expect(count).toBeGreaterThan(0);
    expect(logprobs?.token_logprobs).toHaveLength(count);
    expect(logprobs?.text_offset).toHaveLength(count);
    expect(logprobs?.top_logprobs).toHaveLength(count);
    for (const alternatives of logprobs?.top_logprobs ?? [])
      expect(Object.keys(alternatives).length).toBeLessThanOrEqual(2);
    for (const lp of logprobs?.token_logprobs ?? []) expect(lp).toBeLessThanOrEqual(0);
    const offsets = logprobs?.text_offset ?? [];
    expect(offsets[0]).toBe(0);
    for (let i = 1; i < offsets.length; i++)
      expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1] as number);
  });

  it("keeps the best n of best_of choices and bills all of them", async () => {
    const completion = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Pick",
      max_tokens: 4,
      n: 1,
      best_of: 3,
      seed: 3,
    });
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]?.logprobs).toBeNull();
    const own = await t.client.completions.create({
      model: TINY_MODEL,
      prompt: "Pick",
      max_tokens: 4,
      seed: 3,
    });
    expect(completion.usage?.completion_tokens).toBeGreaterThan(own.usage?.completion_tokens ?? 0);
  });

  it("streams text_completion chunks with usage and [DONE], the same text as not streamed", async () => {
    const ask = { model: TINY_MODEL, prompt: "Stream", max_tokens: 6, seed: 11, temperature: 0 };
    const whole = await t.client.completions.create(ask);
    const stream = await t.client.completions.create({
      ...ask,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: unknown;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("text_completion");
      for (const choice of chunk.choices) {
        text += choice.text;
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]?.text);
    expect(finish).toBe(whole.choices[0]?.finish_reason);
    expect(usage).toEqual(whole.usage);
  });

  it("refuses bad input with 400 naming the field", async () => {
    for (const [body, param] of [
      [{ prompt: "x", n: 3, best_of: 2 }, "best_of"],
      [{ prompt: "x", best_of: 2, stream: true }, "best_of"],
      [{ prompt: "x", suffix: "end" }, "suffix"],
      [{ prompt: "x", echo: true, logprobs: 1 }, "echo"],
      [{ prompt: "x", logprobs: 6 }, "logprobs"],
      [{ prompt: [] }, "prompt"],
      [{ prompt: [[]] }, "prompt[0]"],
      [{ prompt: [999_999] }, "prompt"],
      [{ prompt: "x", stream_options: { include_usage: true } }, "stream_options"],
      [{ prompt: "x", max_tokens: 4096 }, "prompt"],
      [{ prompt: "x", mystery: 1 }, "mystery"],
      [{}, "prompt"],
    ] as const) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error?.param, JSON.stringify(res.body)).toBe(param);
    }
  });

  it("refuses a prompt that cannot fit the context from its length alone", async () => {
    const res = await post({ prompt: "word ".repeat(50_000) });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "context_length_exceeded", param: "prompt" });
  });
});
