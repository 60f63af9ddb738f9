import type { SamplingParams } from "../../core/generation.js";

/**
 * Samples a token from the model's raw next-token distribution with the request's settings
 * (logit bias, presence/frequency penalties, temperature, top_p), seeded and reproducible.
 *
 * Used when log probabilities are requested: the engine then reports the model's own
 * probabilities (independent of temperature and truncation, as clients expect) and picks the
 * token here, instead of letting its native sampler both filter and renormalise them.
 */
export class TokenSampler {
  private readonly random: () => number;
  private readonly counts = new Map<number, number>();

  constructor(private readonly params: SamplingParams) {
    this.random = mulberry32(params.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /** `distribution` maps token → probability, most likely first. */
  pick(distribution: ReadonlyMap<number, number>): number {
    const { temperature, topP } = this.params;
    const n = distribution.size;
    const tokens = new Int32Array(n);
    const logits = new Float64Array(n);
    let i = 0;
    for (const [token, probability] of distribution) {
      tokens[i] = token;
      logits[i] = this.adjust(token, probability > 0 ? Math.log(probability) : Number.NEGATIVE_INFINITY);
      i++;
    }
    const chosen = temperature <= 0 ? argmax(logits) : this.sample(logits, temperature, topP);
    const token = tokens[chosen] as number;
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    return token;
  }

  private adjust(token: number, logit: number): number {
    let value = logit;
    const bias = this.params.logitBias?.get(token);
    if (bias !== undefined) value = bias <= -100 ? Number.NEGATIVE_INFINITY : value + bias;
    const count = this.counts.get(token);
    if (count) value -= this.params.frequencyPenalty * count + this.params.presencePenalty;
    return value;
  }

  private sample(logits: Float64Array, temperature: number, topP: number): number {
    let max = Number.NEGATIVE_INFINITY;
    for (const l of logits) if (l > max) max = l;
    const weights = new Float64Array(logits.length);
    let total = 0;
    for (let i = 0; i < logits.length; i++) {
      const w = Math.exp(((logits[i] as number) - max) / temperature);
      weights[i] = w;
      total += w;
    }
    let order: ArrayLike<number> | undefined;
    let limit = logits.length;
    if (topP < 1) {
      // Nucleus: the smallest set of most likely tokens whose mass reaches top_p.
      const sorted = Array.from({ length: logits.length }, (_, k) => k).sort(
        (a, b) => (weights[b] as number) - (weights[a] as number),
      );
      let mass = 0;
      limit = 0;
      while (limit < sorted.length) {
        mass += weights[sorted[limit] as number] as number;
        limit++;
        if (mass >= topP * total) break;
      }
      total = mass;
      order = sorted;
    }
    let r = this.random() * total;
    for (let k = 0; k < limit; k++) {
      const index = order ? (order[k] as number) : k;
      r -= weights[index] as number;
      if (r <= 0) return index;
    }
    return order ? (order[limit - 1] as number) : limit - 1;
  }
}

function argmax(values: Float64Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}

/** A small, fast, seedable PRNG (32-bit state) returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
