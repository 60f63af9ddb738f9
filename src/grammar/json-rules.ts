/**
 * The JSON building blocks every compiled grammar shares, each defined once per grammar under a
 * fixed name (`ws`, `json-value`, ...), and the two fixed grammars for "any JSON".
 *
 * Whitespace: between tokens a document may have nothing, one space, or one newline followed by
 * up to 20 spaces or tabs — never more, so a model with nothing better to say cannot fill its
 * whole budget with blanks. None before or after the document.
 *
 * Numbers are bounded too: at most 16 integer digits, 16 fraction digits and a two-digit exponent,
 * so every number the grammar writes is finite.
 */
import { CharSet } from "./char-set.js";
import { GbnfBuilder } from "./gbnf-builder.js";
import { alt, charIn, type Expr, lit, opt, rep, seq } from "./gbnf-expr.js";

export const MAX_INTEGER_DIGITS = 16;
export const MAX_FRACTION_DIGITS = 16;

const chars = (text: string): CharSet => CharSet.of(...[...text].map((c) => c.codePointAt(0) as number));
export const DIGIT = CharSet.range(0x30, 0x39);
export const NONZERO_DIGIT = CharSet.range(0x31, 0x39);
export const HEX_DIGIT = DIGIT.union(CharSet.range(0x41, 0x46)).union(CharSet.range(0x61, 0x66));

/** Characters JSON lets appear unescaped in a string (lone surrogates cannot be written in UTF-8). */
const RAW_STRING_CHARS = CharSet.range(0x20, 0x10ffff)
  .minus(chars('"\\'))
  .minus(CharSet.range(0xd800, 0xdfff));
const CONTROL_CHARS = CharSet.range(0, 0x1f);
const SHORT_ESCAPES: Readonly<Record<number, string>> = { 8: "b", 9: "t", 10: "n", 12: "f", 13: "r" };

/**
 * The escapes JSON.stringify writes for the control characters in `controls`: a short escape where
 * one exists, else `\u00` and two lowercase hex digits.
 */
function controlEscapes(controls: CharSet): Expr {
  const short: number[] = [];
  const low: [number[], number[]] = [[], []];
  for (const cp of controls.codePoints()) {
    const letter = SHORT_ESCAPES[cp];
    if (letter !== undefined) short.push(letter.codePointAt(0) as number);
    else low[cp >> 4]?.push(cp & 0xf);
  }
  const hex = (nibbles: number[]): CharSet =>
    CharSet.of(...nibbles.map((n) => n.toString(16).codePointAt(0) as number));
  return seq(
    lit("\\"),
    alt(
      charIn(CharSet.of(...short)),
      seq(lit("u00"), alt(seq(lit("0"), charIn(hex(low[0]))), seq(lit("1"), charIn(hex(low[1]))))),
    ),
  );
}

/** A string as it appears between the quotes of a JSON string, the way JSON.stringify writes it. */
export function encodedLiteral(text: string): Expr {
  return lit(JSON.stringify(text).slice(1, -1));
}

/** Named JSON rules, created in a builder the first time a grammar uses them. */
export class JsonRules {
  private readonly made = new Map<string, Expr>();
  private readonly encodedSets = new Map<string, Expr>();

  constructor(readonly builder: GbnfBuilder) {}

  private named(name: string, body: () => Expr): Expr {
    let r = this.made.get(name);
    if (r === undefined) {
      const reserved = this.builder.reserve(name);
      r = { kind: "ref", name: reserved };
      this.made.set(name, r);
      this.builder.define(reserved, body());
    }
    return r;
  }

  ws(): Expr {
    return this.named("ws", () => opt(alt(lit(" "), seq(lit("\n"), rep(charIn(chars(" \t")), 0, 20)))));
  }

  /** Any character of a JSON string, in any spelling JSON allows. */
  char(): Expr {
    return this.named("json-char", () =>
      alt(
        charIn(CharSet.range(0x20, 0x10ffff).minus(chars('"\\'))),
        seq(lit("\\"), alt(charIn(chars('"\\/bfnrt')), seq(lit("u"), rep(charIn(HEX_DIGIT), 4, 4)))),
      ),
    );
  }

  /**
   * One code point of a JSON string: like `char` but a `\u` escape may not name half of a surrogate
   * pair, so that counting these counts code points, as minLength and maxLength do.
   */
  codePoint(): Expr {
    return this.named("json-code-point", () => {
      const hex = charIn(HEX_DIGIT);
      const notSurrogate = alt(
        seq(charIn(HEX_DIGIT.minus(chars("dD"))), rep(hex, 3, 3)),
        seq(charIn(chars("dD")), charIn(chars("01234567")), rep(hex, 2, 2)),
      );
      return alt(
        charIn(CharSet.range(0x20, 0x10ffff).minus(chars('"\\'))),
        seq(lit("\\"), alt(charIn(chars('"\\/bfnrt')), seq(lit("u"), notSurrogate))),
      );
    });
  }

  /** One character of `set`, spelled the one way JSON.stringify spells it. */
  encodedCharIn(set: CharSet): Expr {
    const key = set.ranges.join(";");
    let encoded = this.encodedSets.get(key);
    if (encoded === undefined) {
      encoded = this.encode(set);
      this.encodedSets.set(key, encoded);
    }
    return encoded;
  }

  private encode(set: CharSet): Expr {
    const parts: Expr[] = [charIn(set.intersect(RAW_STRING_CHARS))];
    if (set.has(0x22)) parts.push(lit('\\"'));
    if (set.has(0x5c)) parts.push(lit("\\\\"));
    const controls = set.intersect(CONTROL_CHARS);
    if (!controls.isEmpty) parts.push(this.builder.rule("json-control-escape", controlEscapes(controls)));
    return alt(...parts);
  }

  string(): Expr {
    return this.named("json-string", () => seq(lit('"'), rep(this.char(), 0, null), lit('"')));
  }

  integer(): Expr {
    return this.named("json-integer", () =>
      seq(
        opt(lit("-")),
        alt(lit("0"), seq(charIn(NONZERO_DIGIT), rep(charIn(DIGIT), 0, MAX_INTEGER_DIGITS - 1))),
      ),
    );
  }

  number(): Expr {
    return this.named("json-number", () =>
      seq(
        this.integer(),
        opt(seq(lit("."), rep(charIn(DIGIT), 1, MAX_FRACTION_DIGITS))),
        opt(seq(charIn(chars("eE")), opt(charIn(chars("+-"))), rep(charIn(DIGIT), 1, 2))),
      ),
    );
  }

  boolean(): Expr {
    return this.named("json-boolean", () => alt(lit("true"), lit("false")));
  }

  value(): Expr {
    return this.named("json-value", () =>
      alt(this.object(), this.array(), this.string(), this.number(), this.boolean(), lit("null")),
    );
  }

  object(): Expr {
    return this.named("json-object", () => {
      const ws = this.ws();
      const member = this.named("json-member", () => seq(this.string(), ws, lit(":"), ws, this.value()));
      return seq(lit("{"), ws, opt(seq(member, rep(seq(ws, lit(","), ws, member), 0, null), ws)), lit("}"));
    });
  }

  array(): Expr {
    return this.named("json-array", () => {
      const ws = this.ws();
      const value = this.value();
      return seq(lit("["), ws, opt(seq(value, rep(seq(ws, lit(","), ws, value), 0, null), ws)), lit("]"));
    });
  }

  /** `ws "," ws`: what separates members and elements. */
  comma(): Expr {
    return seq(this.ws(), lit(","), this.ws());
  }
}

function fixedGrammar(root: (rules: JsonRules) => Expr): string {
  const builder = new GbnfBuilder();
  return builder.build(root(new JsonRules(builder)));
}

/** Any JSON object: `response_format: {"type": "json_object"}`. */
export const JSON_OBJECT_GBNF: string = fixedGrammar((r) => r.object());

/** Any JSON value. */
export const JSON_VALUE_GBNF: string = fixedGrammar((r) => r.value());
