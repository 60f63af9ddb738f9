/**
 * Where a lazy grammar takes over, in llama.cpp's terms (its `grammar_lazy` triggers): the text
 * generated so far is watched after every token; a trigger word is found anywhere in it, a
 * trigger pattern is searched for anywhere in it (one written `^...$` must match the whole of it),
 * and the grammar applies from the start of the first capture group that matched something, else
 * from the start of the match. Words are tried first, then patterns, each in the order given.
 *
 * One difference from llama-server: there a trigger word that is a single token triggers only
 * when that token is sampled; here the word triggers however it was spelled.
 */
export class GrammarTrigger {
  private text = "";
  private readonly patterns: RegExp[];

  constructor(
    private readonly lazy: { readonly words: readonly string[]; readonly patterns: readonly string[] },
  ) {
    // The `d` flag reports where each capture group matched.
    this.patterns = lazy.patterns.map((source) => new RegExp(source, "d"));
  }

  /** The text generated so far. */
  get generated(): string {
    return this.text;
  }

  /**
   * Appends the next piece of generated text; returns the offset in `generated` from which the
   * grammar applies once a trigger is there, else undefined.
   */
  push(piece: string): number | undefined {
    const before = this.text.length;
    this.text += piece;
    for (const word of this.lazy.words) {
      // Had the word been there already, an earlier push would have found it: look at the new end only.
      const at = this.text.indexOf(word, Math.max(0, before - word.length + 1));
      if (at >= 0) return at;
    }
    for (const pattern of this.patterns) {
      const match = pattern.exec(this.text);
      if (match) return startOf(match);
    }
    return undefined;
  }
}

function startOf(match: RegExpExecArray): number {
  const indices = match.indices;
  if (indices) {
    for (let group = 1; group < indices.length; group++) {
      const span = indices[group];
      if (span && span[1] > span[0]) return span[0];
    }
  }
  return match.index;
}
