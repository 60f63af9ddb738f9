/**
 * Recently tokenized texts. Chat prompts repeat most of their pieces (template text, system
 * prompts, earlier turns), and each miss is an HTTP round trip to llama-server.
 */
export class TokenizeCache {
  private readonly entries = new Map<string, number[]>();

  constructor(
    private readonly maxEntries: number,
    /** Texts longer than this are not kept (a long document is rarely sent twice). */
    private readonly maxTextLength = 16_384,
  ) {}

  get(key: string): number[] | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, value);
    return [...value];
  }

  set(key: string, tokens: readonly number[]): void {
    if (key.length > this.maxTextLength) return;
    this.entries.delete(key);
    this.entries.set(key, [...tokens]);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }
}
