import { longestCommonPrefix } from "../token-prefix.js";

/**
 * The free slot whose KV cache shares the longest prefix with the prompt (prompt caching: only
 * the rest of the prompt is evaluated). Ties go to the first free slot.
 */
export function longestPrefixSlot(
  free: readonly number[],
  prompt: readonly number[],
  cachedTokens: (slot: number) => readonly number[],
): number {
  let best = free[0] as number;
  let bestLength = -1;
  for (const slot of free) {
    const length = longestCommonPrefix(cachedTokens(slot), prompt);
    if (length > bestLength) {
      best = slot;
      bestLength = length;
    }
  }
  return best;
}

/**
 * What each slot's KV cache in an engine process holds (prompt + generated tokens), as far as
 * this process knows: asking the engine process per request would cost a round trip. It only
 * guides the choice of slot; the engine process reuses what its cache really holds.
 */
export class SlotCacheMirror {
  private tokens: (readonly number[])[];

  constructor(private readonly slots: number) {
    this.tokens = this.empty();
  }

  /** A new engine process starts with empty caches. */
  reset(): void {
    this.tokens = this.empty();
  }

  set(slot: number, tokens: readonly number[]): void {
    this.tokens[slot] = tokens;
  }

  pick(prompt: readonly number[], free: readonly number[]): number {
    return longestPrefixSlot(free, prompt, (slot) => this.tokens[slot] ?? []);
  }

  /** Prompt tokens the slot should reuse; at least one is evaluated so there are logits to sample. */
  expectedReuse(slot: number, prompt: readonly number[]): number {
    return Math.max(0, Math.min(longestCommonPrefix(this.tokens[slot] ?? [], prompt), prompt.length - 1));
  }

  private empty(): (readonly number[])[] {
    return Array.from({ length: this.slots }, () => []);
  }
}
