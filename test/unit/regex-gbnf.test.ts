import { describe, expect, it } from "vitest";
import { compileJsonSchema } from "../../src/grammar/json-schema-gbnf.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";

/**
 * `pattern` grammars agree with JavaScript's own RegExp (the `u` flag, as JSON Schema validators
 * use it) on which strings match: for every pattern, over fixed strings and random strings drawn
 * from the pattern's own characters plus the ones JSON must escape, the grammar accepts the
 * JSON-encoded string exactly when the regex matches the string.
 */

const patterns = [
  "^abc$",
  "abc",
  "^a",
  "b$",
  "",
  "^$",
  "a*",
  "^(a|bc)+$",
  "^[a-c]{2,3}x?$",
  "^\\d{3}-\\d{4}$",
  "^[^0-9]*$",
  "^\\w+@\\w+\\.com$",
  "^(?:foo|bar)baz$",
  "^(?<year>\\d{4})-(?<month>\\d{2})$",
  "^.{2}$",
  "^\\s*$",
  "^\\S+$",
  "^\\D\\W$",
  "^[\\u0041-\\u005A]+$",
  "^\\u{1F600}$",
  "^\\uD83D\\uDE00?x$",
  "^\\x41\\u0042$",
  "^a|b$",
  "(^a|b$)",
  "^[\\]\\-\\\\]+$",
  "^[.]$",
  "^\\.$",
  "^a{0}b$",
  "^(ab){2}$",
  "^(a?){3}$",
  "^\\/\\*$",
  "^[\\b]$",
  "^\\t\\n\\r\\v\\f\\0$",
  '^[^"\\\\]*$',
  "^\\cJ$",
  "^x{2,}$",
  "^(a|)$",
  "^(|a)b$",
  "^[😀-😂]$",
  "^.$",
  "^[^a]$",
  "^a+?b*?$",
  '^"[a-z]*"$',
  "x.y",
];

const fixed = [
  "",
  "a",
  "b",
  "abc",
  "xabcx",
  "bc",
  "abcbc",
  "ab",
  "abx",
  "aaa",
  "123-4567",
  "12-34567",
  "foo",
  "barbaz",
  "foobaz",
  "2024-05",
  "x y",
  "  ",
  "\t\n",
  "ABC",
  "😀",
  "😁",
  "😀x",
  "AB",
  "a\n",
  '"',
  "\\",
  "]-\\",
  ".",
  "x",
  "abab",
  "/*",
  "\b",
  "\t\n\r\u000b\f\u0000",
  "\n",
  "bb",
  "xx",
  "xxx",
  'a"b',
  '"abc"',
  "\u2028",
  "é",
  "joe@mail.com",
  "joe@mail.org",
  "aab",
  "x\ny",
  "xzy",
  "\u0001",
];

/** A small deterministic PRNG, so failures reproduce. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function samples(pattern: string, count: number): string[] {
  const alphabet = [
    ...new Set([
      ...pattern.replace(/[\\^$()[\]{}|?*+]/g, ""),
      "a",
      "b",
      "x",
      "0",
      '"',
      "\\",
      "\n",
      "\t",
      "\u0001",
      "é",
      "😀",
      " ",
      "-",
    ]),
  ];
  const next = random(pattern.length * 7919 + 1);
  return Array.from({ length: count }, () => {
    const length = Math.floor(next() * 7);
    return Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join("");
  });
}

describe("pattern grammars agree with RegExp", () => {
  for (const pattern of patterns) {
    it(`/${pattern}/u`, async () => {
      const regex = new RegExp(pattern, "u");
      const { gbnf } = compileJsonSchema({ type: "string", pattern });
      const matcher = await gbnfMatcher(gbnf);
      for (const s of [...fixed, ...samples(pattern, 150)]) {
        const text = JSON.stringify(s);
        expect(matcher.accepts(text), `${text} against /${pattern}/u\n${gbnf}`).toBe(regex.test(s));
      }
    });
  }

  it("accepts one spelling per character: JSON.stringify's", async () => {
    const { gbnf } = compileJsonSchema({ type: "string", pattern: "^[a-z\\n]+$" });
    const matcher = await gbnfMatcher(gbnf);
    expect(matcher.accepts('"ab\\nc"')).toBe(true);
    expect(matcher.accepts('"\\u0061b"')).toBe(false);
    expect(matcher.accepts('"ab\\u000ac"')).toBe(false);
  });
});
