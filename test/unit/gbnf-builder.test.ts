import { describe, expect, it } from "vitest";
import { GbnfBuilder, GrammarBuildError } from "../../src/grammar/gbnf-builder.js";
import { alt, lit, ref, rep, seq } from "../../src/grammar/gbnf-expr.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";

/** What the builder guarantees about every grammar, whatever built its rules. */

function failure(build: () => unknown): GrammarBuildError {
  try {
    build();
  } catch (e) {
    expect(e).toBeInstanceOf(GrammarBuildError);
    return e as GrammarBuildError;
  }
  throw new Error("expected a GrammarBuildError");
}

describe("GbnfBuilder", () => {
  it("writes long repetitions so that llama.cpp counts them exactly", async () => {
    // llama.cpp silently makes {m,n} with n > 2000 unbounded; the builder splits long counts.
    const cases: [number, number | null, number[]][] = [
      [300, 700, [0, 299, 300, 301, 512, 699, 700, 701, 2100]],
      [0, 2500, [0, 1, 2499, 2500, 2501]],
      [2100, null, [2099, 2100, 5000]],
    ];
    for (const [min, max, lengths] of cases) {
      const builder = new GbnfBuilder();
      const gbnf = builder.build(seq(lit("<"), builder.repeat("a", lit("a"), min, max), lit(">")));
      expect(gbnf).not.toMatch(/\{\d*,?\d{4,}\}/);
      const matcher = await gbnfMatcher(gbnf);
      for (const n of lengths) {
        const inRange = n >= min && (max === null || n <= max);
        expect(matcher.accepts(`<${"a".repeat(n)}>`), `${n} in {${min},${max ?? ""}}\n${gbnf}`).toBe(inRange);
      }
    }
  });

  it("prunes alternatives that can never finish, and refuses a root that cannot", async () => {
    const builder = new GbnfBuilder();
    const loop = builder.reserve("loop");
    builder.define(loop, seq(lit("b"), ref(loop)));
    const gbnf = builder.build(alt(lit("a"), ref(loop)));
    expect(gbnf).toBe('root ::= "a"\n');
    const empty = new GbnfBuilder();
    const forever = empty.reserve("forever");
    empty.define(forever, seq(lit("x"), ref(forever)));
    expect(failure(() => empty.build(ref(forever))).reason).toBe("empty");
  });

  it("refuses left recursion, which llama.cpp would refuse at load", () => {
    const builder = new GbnfBuilder();
    const list = builder.reserve("list");
    builder.define(list, alt(seq(rep(lit(" "), 0, 1), ref(list), lit(",")), lit("x")));
    expect(failure(() => builder.build(ref(list))).reason).toBe("left_recursive");
  });

  it("stops at its limits on rules, text and expanded size", () => {
    const few = new GbnfBuilder({ maxRules: 3, maxChars: 1e6, maxExpandedSymbols: 1e6 });
    for (let i = 0; i < 3; i++) few.reserve(`r${i}`);
    expect(failure(() => few.reserve("one-more")).reason).toBe("too_large");
    const short = new GbnfBuilder({ maxRules: 100, maxChars: 50, maxExpandedSymbols: 1e6 });
    expect(failure(() => short.rule("long", seq(lit("x".repeat(60)), lit("y")))).reason).toBe("too_large");
    const small = new GbnfBuilder({ maxRules: 100, maxChars: 1e6, maxExpandedSymbols: 500 });
    const big = small.rule("big", rep(alt(lit("ab"), lit("cd")), 0, 200));
    expect(failure(() => small.build(seq(big, big))).reason).toBe("too_large");
  });

  it("shares one rule between identical bodies and keeps rule names valid", () => {
    const builder = new GbnfBuilder();
    const a = builder.rule("my field/with spaces", seq(lit("a"), lit("b"), rep(lit("c"), 0, null)));
    const b = builder.rule("another", seq(lit("ab"), rep(lit("c"), 0, null)));
    expect(b).toEqual(a);
    const gbnf = builder.build(seq(a, b));
    expect(gbnf).toMatch(/^my-field-with-spaces ::= /m);
    for (const line of gbnf.trim().split("\n")) expect(line).toMatch(/^[a-zA-Z0-9-]+ ::= /);
  });
});
