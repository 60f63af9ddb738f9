/**
 * Sets of Unicode code points as sorted, disjoint, inclusive ranges. Regex classes, `.`, the
 * characters JSON lets appear raw in a string and the "any other character" branches of key tries
 * are all such sets; keeping them as ranges lets us take complements and intersections exactly
 * before anything is written as GBNF.
 */

export const MAX_CODE_POINT = 0x10ffff;

export type Range = readonly [number, number];

export class CharSet {
  private constructor(readonly ranges: readonly Range[]) {}

  static readonly EMPTY = new CharSet([]);
  static readonly ALL = new CharSet([[0, MAX_CODE_POINT]]);

  static of(...codePoints: number[]): CharSet {
    return CharSet.fromRanges(codePoints.map((c) => [c, c] as const));
  }

  static range(from: number, to: number): CharSet {
    return CharSet.fromRanges([[from, to]]);
  }

  /** Any ranges, in any order, overlapping or not. */
  static fromRanges(input: readonly Range[]): CharSet {
    const sorted = input.filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
    const out: [number, number][] = [];
    for (const [a, b] of sorted) {
      const last = out.at(-1);
      if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
      else out.push([a, b]);
    }
    return new CharSet(out);
  }

  get isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  get size(): number {
    return this.ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
  }

  /** The one code point of a single-element set, else undefined. */
  get single(): number | undefined {
    const only = this.ranges.length === 1 ? this.ranges[0] : undefined;
    return only && only[0] === only[1] ? only[0] : undefined;
  }

  has(codePoint: number): boolean {
    for (const [a, b] of this.ranges) {
      if (codePoint < a) return false;
      if (codePoint <= b) return true;
    }
    return false;
  }

  union(other: CharSet): CharSet {
    return CharSet.fromRanges([...this.ranges, ...other.ranges]);
  }

  complement(): CharSet {
    const out: [number, number][] = [];
    let next = 0;
    for (const [a, b] of this.ranges) {
      if (a > next) out.push([next, a - 1]);
      next = b + 1;
    }
    if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
    return new CharSet(out);
  }

  intersect(other: CharSet): CharSet {
    return this.complement().union(other.complement()).complement();
  }

  minus(other: CharSet): CharSet {
    return this.intersect(other.complement());
  }

  equals(other: CharSet): boolean {
    return (
      this.ranges.length === other.ranges.length &&
      this.ranges.every(([a, b], i) => other.ranges[i]?.[0] === a && other.ranges[i]?.[1] === b)
    );
  }

  /** Code points in order; only for small sets (the caller checks `size`). */
  *codePoints(): Generator<number> {
    for (const [a, b] of this.ranges) for (let c = a; c <= b; c++) yield c;
  }
}
