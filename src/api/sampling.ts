import { z } from "zod";
import type { SamplingParams } from "../core/generation.js";

/** The sampling fields chat completions and legacy completions share, as the wire spells them. */
export interface WireSampling {
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  stop?: string | string[] | null;
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
}

/**
 * The sampling extensions chat completions and legacy completions accept beyond OpenAI's fields
 * (vLLM's names and meanings): top_k 0 or -1 = every token.
 */
export const samplingExtensions = {
  top_k: z.number().int().min(-1).max(1_000_000).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
};

/** Wire sampling → internal, with OpenAI's defaults for what is left out or null. */
export function toSampling(req: WireSampling): SamplingParams {
  return {
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    seed: req.seed == null ? undefined : foldSeed(req.seed),
    presencePenalty: req.presence_penalty ?? 0,
    frequencyPenalty: req.frequency_penalty ?? 0,
    logitBias: req.logit_bias
      ? new Map(Object.entries(req.logit_bias).map(([token, bias]) => [Number(token), bias]))
      : undefined,
    topK: req.top_k == null ? undefined : Math.max(0, req.top_k),
    minP: req.min_p ?? undefined,
    repetitionPenalty: req.repetition_penalty ?? undefined,
  };
}

/** `stop` as a list (a single string is one stop sequence). */
export function toStop(stop: WireSampling["stop"]): string[] {
  return stop == null ? [] : typeof stop === "string" ? [stop] : stop;
}

/** The engine's seed is 32-bit; larger seeds fold into that range deterministically. */
function foldSeed(seed: number): number {
  const m = 2 ** 32;
  return ((seed % m) + m) % m;
}
