import type { Completion } from "openai/resources/completions";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** The tiny model with fill-in-the-middle tokens. */
const FIM_MODEL = "tiny-fim";

/** A streamed completion put back together: text and logprobs per choice index. */
async function collectStream(stream: AsyncIterable<Completion>) {
  const choices = new Map<number, { text: string; finish: string | null; logprobs: LogprobLists }>();
  let usage: Completion["usage"];
  for await (const chunk of stream) {
    expect(chunk.object).toBe("text_completion");
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      const entry = choices.get(choice.index) ?? {
        text: "",
        finish: null,
        logprobs: { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
      };
      entry.text += choice.text;
      entry.finish = choice.finish_reason ?? entry.finish;
      const lp = choice.logprobs as LogprobLists | null;
      if (lp) for (const key of LOGPROB_KEYS) (entry.logprobs[key] as unknown[]).push(...lp[key]);
      choices.set(choice.index, entry);
    }
  }
  return { choices, usage };
}

interface LogprobLists {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}
const LOGPROB_KEYS = ["tokens", "token_logprobs", "top_logprobs", "text_offset"] as const;

/**
 * The spec types token_logprobs and top_logprobs items as a number and an object, but OpenAI sends
 * null for an echoed prompt's first token (nothing precedes it): checked here, then the rest of the
 * body is checked against the spec.
 */
function expectEchoedLogprobsMatchSpec(completion: Completion): void {
  const copy = JSON.parse(JSON.stringify(completion)) as Completion;
  for (const choice of copy.choices) {
    const lp = choice.logprobs as LogprobLists;
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    lp.token_logprobs[0] = 0;
    lp.top_logprobs[0] = {};
  }
  expectMatchesSchema(copy, "CreateCompletionResponse");
}

/** POST /v1/completions, the legacy text API, through the official SDK and raw HTTP. */
describe("legacy completions", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      extraModels: [{ id: FIM_MODEL, source: inject("fimModelPath"), parallel: 2 }],
    });
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
    return {
      status: res.status,
      body: (await res.json()) as { error?: { param: string; code: string; message: string } },
    };
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
      [{ prompt: [5, 6], echo: true, logprobs: 1 }, "echo"],
      [{ prompt: "x", echo: true, max_tokens: -1 }, "max_tokens"],
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

  describe("max_tokens 0", () => {
    it("with echo gives the prompt back and generates nothing", async () => {
      const completion = await t.client.completions.create({
        model: TINY_MODEL,
        prompt: ["Just the prompt", "and another"],
        max_tokens: 0,
        echo: true,
      });
      expectMatchesSchema(completion, "CreateCompletionResponse");
      expect(completion.choices.map((c) => [c.text, c.finish_reason])).toEqual([
        ["Just the prompt", "length"],
        ["and another", "length"],
      ]);
      expect(completion.usage?.completion_tokens).toBe(0);
      expect(completion.usage?.prompt_tokens).toBeGreaterThan(0);
      expect(completion.usage?.total_tokens).toBe(completion.usage?.prompt_tokens);
    });

    it("without echo gives empty text, streamed and not", async () => {
      const ask = { model: TINY_MODEL, prompt: [5, 6, 7], max_tokens: 0 };
      const whole = await t.client.completions.create(ask);
      expectMatchesSchema(whole, "CreateCompletionResponse");
      expect(whole.choices[0]).toMatchObject({ text: "", finish_reason: "length" });
      expect(whole.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 0 });
      const streamed = await collectStream(
        await t.client.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } }),
      );
      expect(streamed.choices.get(0)).toMatchObject({ text: "", finish: "length" });
      expect(streamed.usage).toEqual(whole.usage);
    });

    it("streams the echoed prompt and finishes with length", async () => {
      const streamed = await collectStream(
        await t.client.completions.create({
          model: TINY_MODEL,
          prompt: "Echo only",
          max_tokens: 0,
          echo: true,
          n: 2,
          stream: true,
        }),
      );
      expect([...streamed.choices.values()].map((c) => [c.text, c.finish])).toEqual([
        ["Echo only", "length"],
        ["Echo only", "length"],
      ]);
    });
  });

  describe("echo with logprobs", () => {
    const prompt = "The answer is";

    it("scores the prompt's tokens, the first with null, then the completion's", async () => {
      const completion = await t.client.completions.create({
        model: TINY_MODEL,
        prompt,
        max_tokens: 4,
        echo: true,
        logprobs: 2,
        temperature: 0,
      });
      expectEchoedLogprobsMatchSpec(completion);
      const choice = completion.choices[0];
      const lp = choice?.logprobs as LogprobLists;
      const promptCount = lp.text_offset.findIndex((offset) => offset >= prompt.length);
      const promptTokens = promptCount === -1 ? lp.tokens.length : promptCount;
      expect(promptTokens).toBe(completion.usage?.prompt_tokens);
      expect(lp.tokens.slice(0, promptTokens).join("")).toBe(prompt);
      expect(lp.tokens.length).toBe(promptTokens + (completion.usage?.completion_tokens ?? 0));
      expect(lp.tokens.join("")).toBe(choice?.text);
      expect(choice?.text.startsWith(prompt)).toBe(true);
      expect(lp.text_offset[0]).toBe(0);
      for (let i = 1; i < lp.tokens.length; i++) {
        expect(lp.text_offset[i]).toBe(
          (lp.text_offset[i - 1] as number) + (lp.tokens[i - 1] as string).length,
        );
        expect(lp.token_logprobs[i]).toBeLessThanOrEqual(0);
        const alternatives = Object.values(lp.top_logprobs[i] ?? {});
        expect(alternatives.length).toBeGreaterThan(0);
        expect(alternatives.length).toBeLessThanOrEqual(2);
        // A token's own logprob never beats the best alternative.
        expect(lp.token_logprobs[i] as number).toBeLessThanOrEqual(Math.max(...alternatives) + 1e-4);
      }
    });

    it("scores each prompt token with the distribution the model samples from after the tokens before it", async () => {
      const scored = await t.client.completions.create({
        model: TINY_MODEL,
        prompt,
        max_tokens: 0,
        echo: true,
        logprobs: 5,
      });
      const lp = scored.choices[0]?.logprobs as LogprobLists;
      const last = lp.tokens.length - 1;
      // What generation sees after the prompt's other tokens: its first token's alternatives.
      const generated = await t.client.completions.create({
        model: TINY_MODEL,
        prompt: lp.tokens.slice(0, last).join(""),
        max_tokens: 1,
        logprobs: 5,
        temperature: 0,
      });
      const expected = Object.values(generated.choices[0]?.logprobs?.top_logprobs?.[0] ?? {}).sort();
      const actual = Object.values(lp.top_logprobs[last] ?? {}).sort();
      expect(actual).toHaveLength(expected.length);
      actual.forEach((logprob, i) => {
        expect(logprob).toBeCloseTo(expected[i] as number, 3);
      });
    });

    it("streams the scored prompt first, the same as not streamed", async () => {
      const ask = { model: TINY_MODEL, prompt, max_tokens: 5, echo: true, logprobs: 1, temperature: 0 };
      const whole = await t.client.completions.create(ask);
      const streamed = await collectStream(await t.client.completions.create({ ...ask, stream: true }));
      const choice = streamed.choices.get(0);
      expect(choice?.text).toBe(whole.choices[0]?.text);
      const lp = whole.choices[0]?.logprobs as LogprobLists;
      expect(choice?.logprobs.tokens).toEqual(lp.tokens);
      expect(choice?.logprobs.text_offset).toEqual(lp.text_offset);
      expect(choice?.logprobs.token_logprobs[0]).toBeNull();
      choice?.logprobs.token_logprobs.forEach((logprob, i) => {
        if (i > 0) expect(logprob).toBeCloseTo(lp.token_logprobs[i] as number, 3);
      });
    });

    it("with max_tokens 0 scores only the prompt, for every choice", async () => {
      const completion = await t.client.completions.create({
        model: TINY_MODEL,
        prompt: [prompt, "Second"],
        max_tokens: 0,
        echo: true,
        logprobs: 0,
      });
      expectEchoedLogprobsMatchSpec(completion);
      expect(completion.choices.map((c) => c.text)).toEqual([prompt, "Second"]);
      for (const choice of completion.choices) {
        const lp = choice.logprobs as LogprobLists;
        expect(lp.tokens.join("")).toBe(choice.text);
        expect(choice.finish_reason).toBe("length");
      }
      expect(completion.usage?.completion_tokens).toBe(0);
    });
  });

  describe("suffix (fill-in-the-middle)", () => {
    it("completes between the prompt and the suffix on a model with FIM tokens", async () => {
      const completion = await t.client.completions.create({
        model: FIM_MODEL,
        prompt: "def add(a, b):\n    ",
        suffix: "\n    return total",
        max_tokens: 6,
        seed: 1,
      });
      expectMatchesSchema(completion, "CreateCompletionResponse");
      expect(completion.choices).toHaveLength(1);
      expect(completion.usage?.completion_tokens).toBeGreaterThan(0);
      expect(completion.choices[0]?.text.endsWith("return total")).toBe(false);
    });

    it("builds the prompt as FIM_PRE prefix FIM_SUF suffix FIM_MID", async () => {
      const count = async (body: Record<string, unknown>) =>
        (await t.client.completions.create({ model: FIM_MODEL, max_tokens: 0, ...body } as never)).usage
          ?.prompt_tokens ?? 0;
      const prefix = await count({ prompt: "let x = " });
      const suffix = await count({ prompt: "; done" });
      expect(await count({ prompt: "let x = ", suffix: "; done" })).toBe(prefix + suffix + 3);
    });

    it("streams a fill-in-the-middle completion the same as not streamed", async () => {
      const ask = { model: FIM_MODEL, prompt: "<p>", suffix: "</p>", max_tokens: 5, temperature: 0 };
      const whole = await t.client.completions.create(ask);
      const streamed = await collectStream(
        await t.client.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } }),
      );
      expect(streamed.choices.get(0)?.text).toBe(whole.choices[0]?.text);
      expect(streamed.usage).toEqual(whole.usage);
    });

    it("refuses a suffix the model cannot use, or with echo or token prompts, naming suffix", async () => {
      const noFim = await post({ prompt: "x", suffix: "y" });
      expect(noFim.status).toBe(400);
      expect(noFim.body.error).toMatchObject({ param: "suffix", code: "unsupported_parameter" });
      expect(noFim.body.error?.message).toMatch(/fill-in-the-middle/);
      for (const body of [
        { model: FIM_MODEL, prompt: "x", suffix: "y", echo: true },
        { model: FIM_MODEL, prompt: [5, 6], suffix: "y" },
      ]) {
        const res = await post(body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(res.body.error?.param).toBe("suffix");
      }
      // An empty suffix is no suffix.
      expect((await post({ prompt: "x", suffix: "", max_tokens: 1 })).status).toBe(200);
    });
  });
});
