/**
 * `format` for strings: grammars for the formats OpenAI's structured outputs accept. Each accepts
 * only strings that a validator in full-format mode (RFC 3339 dates with real month lengths and
 * leap years, RFC 3986 addresses) accepts; where a format's rule cannot be said in a grammar, the
 * grammar says something narrower:
 *
 * - time and date-time always carry a zone (`Z` or `+hh:mm`), as RFC 3339 requires; fractions of a
 *   second have at most 9 digits; no leap second.
 * - hostname: at most 6 labels of at most 40 characters, which keeps the whole name within the
 *   253 characters the RFC allows (a grammar cannot count the total).
 * - email: the common dot-atom form; at most 8 parts each side.
 * - duration: whole numbers of at most 9 digits per component.
 *
 * None of these characters needs escaping in JSON, so the grammars are the JSON text itself.
 */
import { CharSet } from "./char-set.js";
import type { GbnfBuilder } from "./gbnf-builder.js";
import { alt, charIn, type Expr, lit, opt, rep, seq } from "./gbnf-expr.js";

const set = (text: string): CharSet => CharSet.of(...[...text].map((c) => c.codePointAt(0) as number));
const range = (from: string, to: string): CharSet =>
  CharSet.range(from.codePointAt(0) as number, to.codePointAt(0) as number);
const DIGIT = range("0", "9");
const ALNUM = DIGIT.union(range("a", "z")).union(range("A", "Z"));
const HEX = DIGIT.union(range("a", "f")).union(range("A", "F"));

const d = (s: CharSet = DIGIT): Expr => charIn(s);
const digits = (n: number): Expr => rep(d(), n, n);

export const STRING_FORMATS = [
  "date",
  "time",
  "date-time",
  "duration",
  "uuid",
  "email",
  "hostname",
  "ipv4",
  "ipv6",
] as const;

export type StringFormat = (typeof STRING_FORMATS)[number];

export function isStringFormat(name: string): name is StringFormat {
  return (STRING_FORMATS as readonly string[]).includes(name);
}

/** The JSON string (quotes included) of a value in `format`. */
export function formatGrammar(format: StringFormat, builder: GbnfBuilder): Expr {
  const pieces = new FormatPieces(builder);
  return seq(lit('"'), pieces.get(format), lit('"'));
}

class FormatPieces {
  constructor(private readonly builder: GbnfBuilder) {}

  get(format: StringFormat): Expr {
    switch (format) {
      case "date":
        return this.builder.rule("format-date", this.date());
      case "time":
        return this.builder.rule("format-time", this.time());
      case "date-time":
        return this.builder.rule("format-date-time", seq(this.get("date"), lit("T"), this.get("time")));
      case "duration":
        return this.builder.rule("format-duration", this.duration());
      case "uuid":
        return this.builder.rule(
          "format-uuid",
          seq(
            this.hex(8),
            lit("-"),
            this.hex(4),
            lit("-"),
            this.hex(4),
            lit("-"),
            this.hex(4),
            lit("-"),
            this.hex(12),
          ),
        );
      case "email":
        return this.builder.rule("format-email", this.email());
      case "hostname":
        return this.builder.rule("format-hostname", this.hostname());
      case "ipv4":
        return this.builder.rule("format-ipv4", this.ipv4());
      case "ipv6":
        return this.builder.rule("format-ipv6", this.ipv6());
    }
  }

  private hex(n: number): Expr {
    return rep(charIn(HEX), n, n);
  }

  /** RFC 3339 full-date, February 29th only in leap years (divisible by 4, centuries by 400). */
  private date(): Expr {
    const day = (last: Expr): Expr => alt(seq(lit("0"), d(range("1", "9"))), seq(d(set("12")), d()), last);
    const monthDay = alt(
      seq(
        alt(seq(lit("0"), d(set("13578"))), seq(lit("1"), d(set("02")))),
        lit("-"),
        day(seq(lit("3"), d(set("01")))),
      ),
      seq(alt(seq(lit("0"), d(set("469"))), lit("11")), lit("-"), day(lit("30"))),
      seq(
        lit("02-"),
        alt(seq(lit("0"), d(range("1", "9"))), seq(lit("1"), d()), seq(lit("2"), d(range("0", "8")))),
      ),
    );
    // Two digits divisible by 4, and the same without 00.
    const by4 = alt(
      seq(lit("0"), d(set("048"))),
      seq(d(set("2468")), d(set("048"))),
      seq(d(set("13579")), d(set("26"))),
    );
    const by4NotZero = alt(
      seq(lit("0"), d(set("48"))),
      seq(d(set("2468")), d(set("048"))),
      seq(d(set("13579")), d(set("26"))),
    );
    const leapYear = alt(seq(digits(2), by4NotZero), seq(by4, lit("00")));
    return alt(seq(digits(4), lit("-"), monthDay), seq(leapYear, lit("-02-29")));
  }

  private time(): Expr {
    const hour = alt(seq(d(set("01")), d()), seq(lit("2"), d(range("0", "3"))));
    const sixty = seq(d(range("0", "5")), d());
    const zone = alt(lit("Z"), seq(d(set("+-")), hour, lit(":"), sixty));
    return seq(hour, lit(":"), sixty, lit(":"), sixty, opt(seq(lit("."), rep(d(), 1, 9))), zone);
  }

  private duration(): Expr {
    const n = rep(d(), 1, 9);
    const part = (unit: string): Expr => seq(n, lit(unit));
    // Components in order, at least one: A B? C? | B C? | C.
    const some = (a: string, b: string, c: string): Expr =>
      alt(seq(part(a), opt(part(b)), opt(part(c))), seq(part(b), opt(part(c))), part(c));
    const time = seq(lit("T"), some("H", "M", "S"));
    return seq(lit("P"), alt(seq(some("Y", "M", "D"), opt(time)), time, part("W")));
  }

  private email(): Expr {
    const atext = charIn(ALNUM.union(set("!#$%&'*+/=?^_`{|}~-")));
    const atom = rep(atext, 1, 64);
    const label = this.label(63);
    return seq(atom, rep(seq(lit("."), atom), 0, 7), lit("@"), rep(seq(label, lit(".")), 1, 7), label);
  }

  private hostname(): Expr {
    const label = this.label(40);
    return seq(label, rep(seq(lit("."), label), 0, 5), opt(lit(".")));
  }

  /** A DNS label: letters, digits and inner hyphens, at most `max` characters. */
  private label(max: number): Expr {
    return this.builder.rule(
      `format-label-${max}`,
      seq(charIn(ALNUM), opt(seq(rep(charIn(ALNUM.union(set("-"))), 0, max - 2), charIn(ALNUM)))),
    );
  }

  private ipv4(): Expr {
    const octet = this.builder.rule(
      "format-ipv4-octet",
      alt(
        seq(lit("25"), d(range("0", "5"))),
        seq(lit("2"), d(range("0", "4")), d()),
        seq(lit("1"), d(), d()),
        seq(d(range("1", "9")), d()),
        d(),
      ),
    );
    return seq(octet, rep(seq(lit("."), octet), 3, 3));
  }

  /** RFC 3986 IPv6address: eight groups, one run of zero groups as `::`, an IPv4 tail allowed. */
  private ipv6(): Expr {
    const h16 = this.builder.rule("format-ipv6-h16", rep(charIn(HEX), 1, 4));
    const groups = (n: number): Expr => rep(seq(h16, lit(":")), n, n);
    const ls32 = this.builder.rule("format-ipv6-ls32", alt(seq(h16, lit(":"), h16), this.get("ipv4")));
    /** Up to k+1 groups before `::`, or none. */
    const before = (k: number): Expr => opt(seq(rep(seq(h16, lit(":")), 0, k), h16));
    return alt(
      seq(groups(6), ls32),
      seq(lit("::"), groups(5), ls32),
      seq(before(0), lit("::"), groups(4), ls32),
      seq(before(1), lit("::"), groups(3), ls32),
      seq(before(2), lit("::"), groups(2), ls32),
      seq(before(3), lit("::"), groups(1), ls32),
      seq(before(4), lit("::"), ls32),
      seq(before(5), lit("::"), h16),
      seq(before(6), lit("::")),
    );
  }
}
