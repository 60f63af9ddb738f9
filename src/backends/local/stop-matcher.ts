/**
 * Finds stop strings in streamed text. Text that could still turn into a stop string is held back
 * until it either completes one (the text before it is released and generation ends) or cannot.
 */
export class StopMatcher {
  private held = "";
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((max, s) => Math.max(max, s.length), 0);
  }

  /** Returns the text safe to emit now, and whether a stop string was found. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    this.held += text;
    let first = -1;
    for (const stop of this.stops) {
      const at = this.held.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      const emit = this.held.slice(0, first);
      this.held = "";
      return { emit, stopped: true };
    }
    const keep = this.partialSuffixLength();
    const emit = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { emit, stopped: false };
  }

  /** Text still held when generation ends for another reason belongs to the output. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest suffix of the held text that is a proper prefix of some stop string. */
  private partialSuffixLength(): number {
    const max = Math.min(this.held.length, this.longest - 1);
    for (let length = max; length > 0; length--) {
      const suffix = this.held.slice(this.held.length - length);
      if (this.stops.some((stop) => stop.startsWith(suffix))) return length;
    }
    return 0;
  }
}
