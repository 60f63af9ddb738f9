import type { SamplingParams } from "../../core/generation.js";

/**
 * Samples a token from the model's raw next-token distribution with the request's settings
 * (logit bias, presence/frequency penalties, top_k, temperature, top_p, min_p, in that order, as
 * vLLM applies them), seeded and reproducible. A repetition penalty needs the raw logits'
 * signs, which probabilities no longer carry: the engines apply it natively, never here.
 *
 * Used when log probabilities are requested: the engine then reports the model's own
 * probabilities (independent of temperature and truncation, as clients expect) and picks the
 * token here, instead of letting its native sampler both filter and renormalise them.
 */
/**
 * The logit of a token whose probability underflowed to zero: far below any real one, yet finite,
 * so a grammar that allows only such tokens can still choose among them.
 */
const UNDERFLOW_LOGIT = -1e4;
/** Draws from the whole distribution before a grammar's allowed tokens are listed one by one. */
const REJECTION_ATTEMPTS = 32;

export class TokenSampler {
  private readonly random: () => number;
  private readonly counts = new Map<number, number>();

  constructor(private readonly params: SamplingParams) {
    this.random = mulberry32(params.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /**
   * `distribution` maps token → probability, most likely first. `allowed`, when given (a
   * grammar), limits the choice to the tokens it accepts: the request's settings then apply to the
   * allowed tokens alone, as llama.cpp applies a grammar before its other samplers. Returns
   * undefined when no allowed token is left (every one of them banned by logit bias).
   */
  pick(distribution: ReadonlyMap<number, number>): number;
  pick(distribution: ReadonlyMap<number, number>, allowed?: (token: number) => boolean): number | undefined;
  pick(distribution: ReadonlyMap<number, number>, allowed?: (token: number) => boolean): number | undefined {
    const { temperature, topP } = this.params;
    const n = distribution.size;
    const tokens = new Int32Array(n);
    const logits = new Float64Array(n);
    let i = 0;
    for (const [token, probability] of distribution) {
      tokens[i] = token;
      logits[i] = this.adjust(token, probability > 0 ? Math.log(probability) : UNDERFLOW_LOGIT);
      i++;
    }
    const topK = this.params.topK ?? 0;
    if (topK > 0 && topK < n && temperature > 0) keepTopK(logits, topK);
    let chosen: number | undefined;
    if (!allowed)
      chosen = temperature <= 0 ? argmax(logits) : this.sample(weightsOf(logits, temperature), topP);
    else chosen = this.pickAllowed(tokens, logits, memoize(allowed));
    if (chosen === undefined) return undefined;
    const token = tokens[chosen] as number;
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
    return token;
  }

  private pickAllowed(tokens: Int32Array, logits: Float64Array, allowed: (token: number) => boolean) {
    const { temperature, topP } = this.params;
    const allowedAt = (i: number) => logits[i] !== Number.NEGATIVE_INFINITY && allowed(tokens[i] as number);
    if (temperature <= 0) {
      // The most likely allowed token: walk from the most likely down, asking as few times as possible.
      const order = Array.from({ length: logits.length }, (_, k) => k).sort(
        (a, b) => (logits[b] as number) - (logits[a] as number),
      );
      return order.find(allowedAt);
    }
    const weights = weightsOf(logits, temperature);
    if (topP >= 1 && !(this.params.minP ?? 0)) {
      // Rejection sampling: a draw from all tokens, kept when allowed, is a draw from the allowed
      // ones. A model that mostly wants what the grammar allows needs one or two checks.
      const cumulative = new Float64Array(weights.length);
      let total = 0;
      for (let k = 0; k < weights.length; k++) {
        total += weights[k] as number;
        cumulative[k] = total;
      }
      for (let attempt = 0; attempt < REJECTION_ATTEMPTS; attempt++) {
        const index = lowerBound(cumulative, this.random() * total);
        if (allowedAt(index)) return index;
      }
    }
    // Everything the grammar refuses left out, then the request's settings over the rest.
    let any = false;
    for (let k = 0; k < weights.length; k++) {
      if ((weights[k] as number) > 0 && allowedAt(k)) any = true;
      else weights[k] = 0;
    }
    if (!any) {
      // The allowed tokens' probabilities underflowed to zero next to the model's favourites.
      for (let k = 0; k < logits.length; k++) if (allowedAt(k)) weights[k] = 1;
      if (!weights.some((w) => w > 0)) return undefined;
    }
    return this.sample(weights, topP);
  }

  private adjust(token: number, logit: number): number {
    let value = logit;
    const bias = this.params.logitBias?.get(token);
    if (bias !== undefined) value = bias <= -100 ? Number.NEGATIVE_INFINITY : value + bias;
    const count = this.counts.get(token);
    if (count) value -= this.params.frequencyPenalty * count + this.params.presencePenalty;
    return value;
  }

  /**
   * A draw from `weights` (unnormalised; zero = never), within the top_p nucleus, and of that
   * only the tokens min_p keeps (at least min_p times the likeliest one's weight).
   */
  private sample(weights: Float64Array, topP: number): number {
    if (topP < 1) keepNucleus(weights, topP);
    const minP = this.params.minP ?? 0;
    if (minP > 0) {
      let max = 0;
      for (const w of weights) if (w > max) max = w;
      for (let k = 0; k < weights.length; k++) if ((weights[k] as number) < minP * max) weights[k] = 0;
    }
    let total = 0;
    for (const w of weights) total += w;
    let r = this.random() * total;
    let last = -1;
    for (let k = 0; k < weights.length; k++) {
      const w = weights[k] as number;
      if (w <= 0) continue;
      last = k;
      r -= w;
      if (r <= 0) return k;
    }
    // Rounding left a little of r: the last token with any weight.
    return last >= 0 ? last : weights.length - 1;
  }
}

/** Zeroes every weight outside the smallest set of most likely tokens whose mass reaches top_p. */
function keepNucleus(weights: Float64Array, topP: number): void {
  let total = 0;
  for (const w of weights) total += w;
  const order = Array.from({ length: weights.length }, (_, k) => k).sort(
    (a, b) => (weights[b] as number) - (weights[a] as number),
  );
  let mass = 0;
  let kept = 0;
  while (kept < order.length && mass < topP * total) {
    mass += weights[order[kept] as number] as number;
    kept++;
  }
  for (let k = Math.max(kept, 1); k < order.length; k++) weights[order[k] as number] = 0;
}

/** Leaves the `k` largest logits (and any tied with the k-th), every other at -Infinity. */
function keepTopK(logits: Float64Array, k: number): void {
  const sorted = Float64Array.from(logits).sort();
  const threshold = sorted[sorted.length - k] as number;
  for (let i = 0; i < logits.length; i++)
    if ((logits[i] as number) < threshold) logits[i] = Number.NEGATIVE_INFINITY;
}

/** Temperature-scaled weights, the largest 1 (a logit of -Infinity weighs 0). */
function weightsOf(logits: Float64Array, temperature: number): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const l of logits) if (l > max) max = l;
  const weights = new Float64Array(logits.length);
  if (max === Number.NEGATIVE_INFINITY) return weights;
  for (let i = 0; i < logits.length; i++) weights[i] = Math.exp(((logits[i] as number) - max) / temperature);
  return weights;
}

/** The first index whose cumulative weight reaches `target`. */
function lowerBound(cumulative: Float64Array, target: number): number {
  let lo = 0;
  let hi = cumulative.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((cumulative[mid] as number) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function memoize(allowed: (token: number) => boolean): (token: number) => boolean {
  const answers = new Map<number, boolean>();
  return (token) => {
    let answer = answers.get(token);
    if (answer === undefined) {
      answer = allowed(token);
      answers.set(token, answer);
    }
    return answer;
  };
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
