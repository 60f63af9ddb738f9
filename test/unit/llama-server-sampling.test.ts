import { describe, expect, it } from "vitest";
import { completionBody } from "../../src/backends/local/engines/llama-server/completion-request.js";
import type { SamplingParams } from "../../src/core/generation.js";

const base: SamplingParams = { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0 };
const body = (sampling: Partial<SamplingParams>) =>
  completionBody({ promptTokens: [1, 2, 3], maxTokens: 8, sampling: { ...base, ...sampling } }, 0, 2048);

/** What llama-server is asked to sample with: exact OpenAI semantics unless a truncation is asked for. */
describe("llama-server's sampler settings", () => {
  it("samples from every token in the OpenAI order when nothing is truncated", () => {
    expect(body({})).toMatchObject({
      top_k: 0,
      min_p: 0,
      top_p: 1,
      temperature: 1,
      samplers: ["penalties", "temperature", "top_p"],
    });
  });

  it("is greedy at temperature 0 with top_k 1, skipping the pass over the whole vocabulary", () => {
    expect(body({ temperature: 0, topP: 0.5, minP: 0.2 })).toMatchObject({
      top_k: 1,
      samplers: ["penalties", "top_k"],
    });
  });

  it("puts top_k before temperature and min_p after top_p when asked for", () => {
    expect(body({ topK: 20, minP: 0.05, topP: 0.9 })).toMatchObject({
      top_k: 20,
      min_p: 0.05,
      samplers: ["penalties", "top_k", "temperature", "top_p", "min_p"],
    });
    expect(body({ minP: 0.1 })).toMatchObject({ samplers: ["penalties", "temperature", "top_p", "min_p"] });
  });

  it("applies a repetition penalty over the whole context", () => {
    expect(body({ repetitionPenalty: 1.3 })).toMatchObject({ repeat_penalty: 1.3, repeat_last_n: 2048 });
    expect(body({})).toMatchObject({ repeat_penalty: 1 });
  });
});
