import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { TokenGeneration } from "../../src/backends/local/engine.js";
import { InProcessEngine } from "../../src/backends/local/engines/in-process/in-process-engine.js";

/**
 * How the in-process engine (and the runner, which runs it) drives node-llama-cpp: both rely on
 * node-llama-cpp internals that an upgrade could change silently, so these tests look at them.
 */
const SLOTS = 3;
let engine: InProcessEngine;
/** Sizes of the batches node-llama-cpp decoded, in order. */
const batches: number[] = [];

beforeAll(async () => {
  engine = new InProcessEngine({
    modelPath: async () => inject("tinyModelPath"),
    contextSizeCap: 512,
    gpu: "off",
    slots: SLOTS,
    threads: 1,
    gpuLayers: 0,
    maxQueue: 0,
    logger: pino({ level: "silent" }),
  });
  await engine.load();
  // Count the tokens of every decode: the binding's initBatch(n) starts a batch of n tokens.
  const context = (engine as unknown as { context: { _ctx: object } }).context;
  const binding = context._ctx as Record<string, unknown>;
  context._ctx = new Proxy(binding, {
    get(target, property) {
      if (property === "initBatch")
        return (size: number) => {
          batches.push(size);
          return (target.initBatch as (n: number) => void)(size);
        };
      const value = target[property as string];
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
});

afterAll(async () => {
  await engine?.close();
});

function generation(seed: number, maxTokens: number): TokenGeneration {
  return {
    promptTokens: [1, 2, 3 + seed],
    maxTokens,
    sampling: { temperature: 0.8, topP: 1, seed, presencePenalty: 0, frequencyPenalty: 0 },
  } as TokenGeneration;
}

async function tokensOf(slot: number, req: TokenGeneration): Promise<number> {
  let count = 0;
  for await (const event of engine.generateOnSlot(slot, req, new AbortController().signal)) {
    if (event.type === "token" && event.token >= 0) count++;
  }
  return count;
}

describe("in-process decoding", () => {
  it("decodes the next tokens of concurrent generations in one batch", async () => {
    batches.length = 0;
    const counts = await Promise.all(
      Array.from({ length: SLOTS }, (_, slot) => tokensOf(slot, generation(slot, 24))),
    );
    // Random weights may end a text early; the steps where all were still going must be shared.
    const shortest = Math.min(...counts);
    expect(shortest).toBeGreaterThan(4);
    const generationSteps = batches.filter((size) => size <= SLOTS);
    const full = generationSteps.filter((size) => size === SLOTS).length;
    // Every step but the first (the prompts) and the last few (texts ending) holds all three.
    expect(full).toBeGreaterThanOrEqual(shortest - 2);
    const total = counts.reduce((a, b) => a + b, 0);
    expect(generationSteps.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(total);
  });

  it("samples without truncation by leaving top-k out of node-llama-cpp's sampler config", () => {
    // node-llama-cpp turns topK 0 into top-k over the whole vocabulary (a full sort per token)
    // and defaults an absent topK to 40; only null makes it drop the sampler.
    const internals = engine as unknown as {
      samplingOptions(sampling: TokenGeneration["sampling"], prompt: number[], generated: number[]): object;
      sequences: { _resolveSamplerConfig(options: object): object }[];
    };
    const resolve = (sampling: TokenGeneration["sampling"]) =>
      internals.sequences[0]?._resolveSamplerConfig(internals.samplingOptions(sampling, [], []));
    const exact = resolve(generation(1, 8).sampling);
    expect(exact).not.toHaveProperty("topK");
    expect(exact).toMatchObject({ temperature: 0.8, topP: 1 });
    // A top_k the request asks for goes through as it is.
    expect(resolve({ ...generation(1, 8).sampling, topK: 5 })).toMatchObject({ topK: 5 });
  });
});
