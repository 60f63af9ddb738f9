import { describe, expect, it } from "vitest";
import type { JsonSchema } from "../../src/core/messages.js";
import { compileJsonSchema } from "../../src/grammar/json-schema-gbnf.js";
import { decimalOf } from "../../src/grammar/number-range-gbnf.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";
import { schemaValidator } from "../helpers/json-schema-validator.js";

/**
 * Bounded numbers are exact on the digits: for integer bounds every integer in a window around
 * each bound, and for decimal bounds hundreds of decimals near them, the grammar accepts a number's
 * text exactly when ajv accepts its value. Bounded numbers are written without an exponent and
 * with at most 15 digits (integer and fraction digits together), so no text can round onto an
 * exclusive bound.
 */

describe("integer bounds", () => {
  const cases: JsonSchema[] = [
    { minimum: 0, maximum: 0 },
    { minimum: -15, maximum: 1234 },
    { minimum: 7, maximum: 7000 },
    { minimum: -1000, maximum: -7 },
    { exclusiveMinimum: 0, exclusiveMaximum: 100 },
    { maximum: -7 },
    { minimum: 100 },
    { minimum: -5 },
    { maximum: 999 },
    { minimum: 10, maximum: 19 },
    { minimum: 99, maximum: 1001 },
    { minimum: 1.5, maximum: 9.5 },
    { exclusiveMinimum: -2.5, exclusiveMaximum: 2.5 },
    { minimum: 123456789012, maximum: 123456789123 },
    { format: "int32" },
  ];
  for (const bounds of cases) {
    it(JSON.stringify(bounds), async () => {
      const schema = { type: "integer", ...bounds };
      const { gbnf } = compileJsonSchema(schema);
      const matcher = await gbnfMatcher(gbnf);
      const valid = schemaValidator(schema);
      const anchors = Object.values(bounds)
        .filter((v): v is number => typeof v === "number")
        .concat(bounds.format === "int32" ? [2 ** 31 - 1, -(2 ** 31)] : [], [0]);
      const values = new Set<number>([999999999999999, -999999999999999]);
      for (const anchor of anchors) for (let d = -40; d <= 40; d++) values.add(Math.round(anchor) + d);
      for (const n of values) {
        expect(matcher.accepts(String(n)), `${n}\n${gbnf}`).toBe(valid(n));
      }
      for (const text of ["-0", "01", "1.0", "1e2", "+1"]) expect(matcher.accepts(text), text).toBe(false);
    });
  }

  it("writes at most 15 digits for bounded integers", async () => {
    const matcher = await gbnfMatcher(compileJsonSchema({ type: "integer", minimum: 0 }).gbnf);
    expect(matcher.accepts("999999999999999")).toBe(true);
    expect(matcher.accepts("1000000000000000")).toBe(false);
  });
});

/** Deterministic, so a failure reproduces. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Decimal texts near the anchors: anchor ± k·10^-j, written with j fraction digits (trailing zeros too). */
function decimalsNear(anchors: number[], count: number, seed: number): string[] {
  const next = random(seed);
  const out = new Set<string>(["0", "1", "-1", "0.5", "-0.5", "100000000000000"]);
  for (let attempt = 0; attempt < count * 20 && out.size < count; attempt++) {
    const anchor = anchors[Math.floor(next() * anchors.length)] as number;
    const places = Math.floor(next() * 13);
    const step = Math.floor(next() * 21) - 10;
    const value = anchor + step * 10 ** -places;
    const text = value.toFixed(places);
    if (text.replace(/[-.]/g, "").length <= 15 && !/^-0(\.0*)?$/.test(text)) out.add(text);
  }
  return [...out];
}

describe("number bounds", () => {
  const cases: JsonSchema[] = [
    { minimum: -1.5, exclusiveMaximum: 2.25 },
    { exclusiveMinimum: 0 },
    { exclusiveMaximum: 0 },
    { minimum: 0.1, maximum: 0.3 },
    { exclusiveMinimum: -0.001, exclusiveMaximum: 0.001 },
    { minimum: 123.456, maximum: 123.4561 },
    { minimum: -1000, exclusiveMaximum: -999.5 },
    { minimum: 1e-10, maximum: 1 },
    { maximum: 5 },
    { minimum: 2.5, maximum: 2.5 },
    { minimum: 0.30000000000000004 },
    { exclusiveMinimum: 99.99, maximum: 1e6 },
  ];
  cases.forEach((bounds, i) => {
    it(JSON.stringify(bounds), async () => {
      const schema = { type: "number", ...bounds };
      const { gbnf } = compileJsonSchema(schema);
      const matcher = await gbnfMatcher(gbnf);
      const valid = schemaValidator(schema);
      const anchors = Object.values(bounds).filter((v): v is number => typeof v === "number");
      for (const text of decimalsNear([...anchors, 0], 400, 1000 + i)) {
        expect(matcher.accepts(text), `${text}\n${gbnf}`).toBe(valid(Number(text)));
      }
      for (const text of ["1e0", "-0", "00.5", ".5", "5."]) expect(matcher.accepts(text), text).toBe(false);
    });
  });

  it("reads a bound from the double's shortest spelling", () => {
    expect(decimalOf(1e-7)).toEqual({ negative: false, int: 0n, frac: "0000001" });
    expect(decimalOf(-1.5e21)).toEqual({ negative: true, int: 1500000000000000000000n, frac: "" });
    expect(decimalOf(123.456)).toEqual({ negative: false, int: 123n, frac: "456" });
    expect(decimalOf(-0)).toEqual({ negative: false, int: 0n, frac: "" });
  });
});
