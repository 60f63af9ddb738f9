import { describe, expect, it } from "vitest";
import { mulberry32, TokenSampler } from "../../src/backends/local/token-sampler.js";
import type { SamplingParams } from "../../src/core/generation.js";

const base: SamplingParams = { temperature: 1, topP: 1, seed: 42, presencePenalty: 0, frequencyPenalty: 0 };
/** token → probability, most likely first. */
const distribution = new Map([
  [10, 0.5],
  [11, 0.3],
  [12, 0.15],
  [13, 0.05],
]);

function draws(params: SamplingParams, count: number): number[] {
  const sampler = new TokenSampler(params);
  return Array.from({ length: count }, () => sampler.pick(distribution));
}

describe("sampling a token from the model's distribution", () => {
  it("picks the most likely token at temperature 0", () => {
    expect(draws({ ...base, temperature: 0 }, 5)).toEqual([10, 10, 10, 10, 10]);
  });

  it("repeats itself for the same seed and differs across seeds", () => {
    expect(draws(base, 30)).toEqual(draws(base, 30));
    expect(draws(base, 30)).not.toEqual(draws({ ...base, seed: 43 }, 30));
  });

  it("follows the distribution's proportions", () => {
    const counts = new Map<number, number>();
    for (const token of draws(base, 4000)) counts.set(token, (counts.get(token) ?? 0) + 1);
    expect((counts.get(10) ?? 0) / 4000).toBeGreaterThan(0.45);
    expect((counts.get(10) ?? 0) / 4000).toBeLessThan(0.55);
    expect((counts.get(13) ?? 0) / 4000).toBeLessThan(0.08);
  });

  it("keeps to the nucleus with top_p", () => {
    const picked = new Set(draws({ ...base, topP: 0.75 }, 500));
    expect([...picked].sort()).toEqual([10, 11]);
  });

  it("keeps to the k likeliest tokens with top_k (an extension), and to every token with 0", () => {
    expect(new Set(draws({ ...base, topK: 2 }, 500))).toEqual(new Set([10, 11]));
    expect(new Set(draws({ ...base, topK: 1, temperature: 2 }, 50))).toEqual(new Set([10]));
    expect(new Set(draws({ ...base, topK: 0 }, 2000))).toEqual(new Set([10, 11, 12, 13]));
  });

  it("keeps the tokens at least min_p times as likely as the likeliest, after temperature", () => {
    // 0.3 / 0.5 = 0.6 and 0.15 / 0.5 = 0.3: min_p 0.5 keeps 10 and 11 only.
    expect(new Set(draws({ ...base, minP: 0.5 }, 500))).toEqual(new Set([10, 11]));
    // Temperature 2 flattens the ratios (0.6 → 0.77, 0.3 → 0.55): now 12 passes too.
    expect(new Set(draws({ ...base, minP: 0.5, temperature: 2 }, 2000))).toEqual(new Set([10, 11, 12]));
  });

  it("applies min_p within the top_p nucleus, as llama.cpp's chain and vLLM do", () => {
    // The nucleus of 0.9 is 10, 11, 12 (13 never); of those 12 has 0.3 of 10's weight: min_p 0.25 keeps it, 0.35 not.
    expect(new Set(draws({ ...base, topP: 0.9, minP: 0.25 }, 1000))).toEqual(new Set([10, 11, 12]));
    expect(new Set(draws({ ...base, topP: 0.9, minP: 0.35 }, 1000))).toEqual(new Set([10, 11]));
  });

  it("never picks a token biased by -100 and favours one biased up", () => {
    const banned = draws({ ...base, temperature: 0, logitBias: new Map([[10, -100]]) }, 3);
    expect(banned).toEqual([11, 11, 11]);
    const favoured = draws({ ...base, logitBias: new Map([[13, 20]]) }, 50);
    expect(favoured.every((t) => t === 13)).toBe(true);
  });

  it("penalises tokens it already produced", () => {
    // Greedy with a strong frequency penalty walks down the list instead of repeating.
    expect(draws({ ...base, temperature: 0, frequencyPenalty: 2 }, 3)).toEqual([10, 11, 12]);
    expect(draws({ ...base, temperature: 0, presencePenalty: 5 }, 4)).toEqual([10, 11, 12, 13]);
  });

  it("picks only tokens a grammar allows, in the proportions the model gives them", () => {
    const allowed = (token: number) => token === 11 || token === 13;
    const sampler = new TokenSampler(base);
    const counts = new Map<number, number>();
    for (let i = 0; i < 4000; i++) {
      const token = sampler.pick(distribution, allowed) as number;
      counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([11, 13]);
    // 0.3 : 0.05 renormalised: 11 about 86% of the time.
    expect((counts.get(11) ?? 0) / 4000).toBeGreaterThan(0.82);
    expect((counts.get(11) ?? 0) / 4000).toBeLessThan(0.9);
  });

  it("applies temperature 0 and top_p to the allowed tokens alone", () => {
    const allowed = (token: number) => token !== 10;
    expect(new TokenSampler({ ...base, temperature: 0 }).pick(distribution, allowed)).toBe(11);
    // Of the allowed mass (0.5), the nucleus of 0.8 (0.4) is token 11 (0.3) and 12 (0.15), never 13.
    const sampler = new TokenSampler({ ...base, topP: 0.8 });
    const picked = new Set(Array.from({ length: 300 }, () => sampler.pick(distribution, allowed)));
    expect([...picked].sort()).toEqual([11, 12]);
  });

  it("finds a rare allowed token among many the grammar refuses", () => {
    // A near-uniform distribution over 5000 tokens, of which the grammar allows one.
    const wide = new Map(Array.from({ length: 5000 }, (_, i) => [i, 1 / 5000] as [number, number]));
    const sampler = new TokenSampler(base);
    for (let i = 0; i < 20; i++) expect(sampler.pick(wide, (token) => token === 4321)).toBe(4321);
    // Even one whose probability underflowed to zero.
    wide.set(4999, 0);
    expect(sampler.pick(wide, (token) => token === 4999)).toBe(4999);
  });

  it("has nothing to pick when the grammar allows only banned tokens", () => {
    const sampler = new TokenSampler({ ...base, logitBias: new Map([[12, -100]]) });
    expect(sampler.pick(distribution, (token) => token === 12)).toBeUndefined();
  });

  it("has a seeded generator in [0, 1)", () => {
    const random = mulberry32(7);
    const values = Array.from({ length: 1000 }, random);
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(mulberry32(7)()).toBe(values[0]);
  });
});
