/**
 * Recently tokenized texts, least recently used dropped first. Chat prompts repeat most of their
 * pieces (template text, system prompts, earlier turns), and each miss is a round trip to the
 * engine process. Bounded by entries and by size (characters of the texts plus tokens held), so
 * a stream of long documents cannot grow it past a few MiB.
 */
export class TokenizeCache {
  private readonly entries = new Map<string, Int32Array>();
  private size = 0;

  constructor(
    private readonly maxEntries: number,
    /** Characters of keys plus tokens held, in all. */
    private readonly maxSize = 1 << 20,
    /** Texts longer than this are not kept (a long document is rarely sent twice). */
    private readonly maxTextLength = 16_384,
  ) {}

  get(key: string): number[] | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, value);
    return Array.from(value);
  }

  set(key: string, tokens: readonly number[]): void {
    if (key.length > this.maxTextLength) return;
    this.delete(key);
    this.entries.set(key, Int32Array.from(tokens));
    this.size += key.length + tokens.length;
    while (this.entries.size > this.maxEntries || this.size > this.maxSize) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.delete(oldest);
    }
  }

  private delete(key: string): void {
    const value = this.entries.get(key);
    if (value === undefined) return;
    this.entries.delete(key);
    this.size -= key.length + value.length;
  }
}
