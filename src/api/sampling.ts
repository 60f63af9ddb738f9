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
}

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
