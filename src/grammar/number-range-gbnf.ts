/**
 * Grammars for numbers within bounds, exact on the digits: an integer in [min, max] and a decimal
 * between two bounds, each bound inclusive or exclusive.
 *
 * Bounded numbers are written without an exponent and with at most 15 significant digit positions
 * (integer digits plus fraction digits). That is what keeps "exact on the digits" exact for a
 * validator too: a validator compares IEEE doubles, and decimals of up to 15 digits convert to
 * distinct doubles in the same order, so no accepted text can round onto an exclusive bound.
 *
 * The idea of splitting a range into same-length digit ranges comes from llama.cpp's
 * json-schema-to-grammar; the code is ours.
 */
import { CharSet } from "./char-set.js";
import { alt, charIn, EPSILON, type Expr, FAIL, lit, rep, seq } from "./gbnf-expr.js";

/** Digit positions a bounded number may use (see above). */
export const MAX_BOUNDED_DIGITS = 15;

const DIGIT = CharSet.range(0x30, 0x39);
const digitRange = (from: number, to: number): Expr => charIn(CharSet.range(0x30 + from, 0x30 + to));
const anyDigits = (min: number, max: number): Expr => rep(charIn(DIGIT), min, max);

/** |x| = int.frac exactly; frac has no trailing zeros. */
export interface Decimal {
  readonly negative: boolean;
  readonly int: bigint;
  readonly frac: string;
}

export interface DecimalBound {
  readonly value: Decimal;
  readonly inclusive: boolean;
}

/** The exact decimal value of a finite double, from its shortest round-trip spelling. */
export function decimalOf(x: number): Decimal {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(x));
  if (!m) throw new Error(`not a finite number: ${x}`);
  const digits = (m[2] ?? "") + (m[3] ?? "");
  const point = (m[2] ?? "").length + Number(m[4] ?? 0);
  const padded = point <= 0 ? "0".repeat(1 - point) + digits : digits.padEnd(point, "0");
  const at = Math.max(point, 1);
  const frac = padded.slice(at).replace(/0+$/, "");
  const int = BigInt(padded.slice(0, at));
  return { negative: m[1] === "-" && (int !== 0n || frac !== ""), int, frac };
}

/** The least integer >= x, or > x when `exclusive`. */
export function integerAbove(x: Decimal, exclusive: boolean): bigint {
  const whole = x.negative ? -x.int : x.int;
  if (x.frac !== "") return x.negative ? whole : whole + 1n;
  return exclusive ? whole + 1n : whole;
}

/** The greatest integer <= x, or < x when `exclusive`. */
export function integerBelow(x: Decimal, exclusive: boolean): bigint {
  const whole = x.negative ? -x.int : x.int;
  if (x.frac !== "") return x.negative ? whole - 1n : whole;
  return exclusive ? whole - 1n : whole;
}

const LIMIT = 10n ** BigInt(MAX_BOUNDED_DIGITS);

/**
 * Integers in [min, max] (null: unbounded) with at most MAX_BOUNDED_DIGITS digits. The caller
 * makes sure a bound that forces more digits is refused first (`boundBeyondDigits`).
 */
export function integerInRange(min: bigint | null, max: bigint | null): Expr {
  const options: Expr[] = [];
  if (min === null || min < 0n) {
    const lo = max !== null && max < 0n ? -max : 1n;
    const hi = min === null || -min >= LIMIT ? null : -min;
    options.push(seq(lit("-"), naturalsIn(lo, hi)));
  }
  if (max === null || max >= 0n) {
    const lo = min !== null && min > 0n ? min : 0n;
    options.push(naturalsIn(lo, max === null || max >= LIMIT ? null : max));
  }
  return alt(...options);
}

/** Which bound, if any, would need more digits than a bounded number may have. */
export function boundBeyondDigits(min: bigint | null, max: bigint | null): "min" | "max" | undefined {
  if (min !== null && min >= LIMIT) return "min";
  if (max !== null && max <= -LIMIT) return "max";
  return undefined;
}

/** Canonical digit strings of n in [lo, hi] (hi null: up to the digit limit). */
function naturalsIn(lo: bigint, hi: bigint | null): Expr {
  return alt(...naturalsByLength(lo, hi).map((p) => p.expr));
}

/** The same, split by digit count, so a decimal can give each length its own fraction budget. */
function naturalsByLength(lo: bigint, hi: bigint | null): { length: number; expr: Expr }[] {
  const top = hi === null || hi >= LIMIT ? LIMIT - 1n : hi;
  if (lo > top) return [];
  const out: { length: number; expr: Expr }[] = [];
  const first = String(lo).length;
  const last = String(top).length;
  for (let length = first; length <= last; length++) {
    const from = length === first ? lo : 10n ** BigInt(length - 1);
    const to = length === last ? top : 10n ** BigInt(length) - 1n;
    out.push({ length, expr: sameLength(String(from), String(to)) });
  }
  return out;
}

/** Digit strings of one length between a and b (a <= b, same length), digit by digit. */
function sameLength(a: string, b: string): Expr {
  if (a === b) return lit(a);
  let i = 0;
  while (a[i] === b[i]) i++;
  const x = Number(a[i]);
  const y = Number(b[i]);
  const restA = a.slice(i + 1);
  const restB = b.slice(i + 1);
  const n = restA.length;
  const lowAll = /^0*$/.test(restA);
  const highAll = /^9*$/.test(restB);
  const from = lowAll ? x : x + 1;
  const to = highAll ? y : y - 1;
  const options: Expr[] = [];
  if (!lowAll) options.push(seq(lit(String(x)), sameLength(restA, "9".repeat(n))));
  if (from <= to) options.push(seq(digitRange(from, to), anyDigits(n, n)));
  if (!highAll) options.push(seq(lit(String(y)), sameLength("0".repeat(n), restB)));
  return seq(lit(a.slice(0, i)), alt(...options));
}

// ---- decimals ----------------------------------------------------------------------------------

interface Magnitude {
  int: bigint;
  frac: string;
  inclusive: boolean;
}

/**
 * Numbers x with lower <= x <= upper (or < where exclusive; null: unbounded), written without an
 * exponent: `-`? integer (`.` digits)?.
 */
export function decimalInRange(lower: DecimalBound | null, upper: DecimalBound | null): Expr {
  const isNeg = (b: DecimalBound) => b.value.negative;
  const isZero = (b: DecimalBound) => b.value.int === 0n && b.value.frac === "";
  const magnitude = (b: DecimalBound): Magnitude => ({
    int: b.value.int,
    frac: b.value.frac,
    inclusive: b.inclusive,
  });
  const options: Expr[] = [];
  // x >= 0
  if (upper === null || !isNeg(upper)) {
    const lo: Magnitude =
      lower === null || isNeg(lower) ? { int: 0n, frac: "", inclusive: true } : magnitude(lower);
    options.push(nonNegative(lo, upper === null ? null : magnitude(upper)));
  }
  // x < 0, written as "-" and y = -x > 0
  if (lower === null || (isNeg(lower) && !isZero(lower))) {
    const lo: Magnitude =
      upper === null || !isNeg(upper) ? { int: 0n, frac: "", inclusive: false } : magnitude(upper);
    options.push(seq(lit("-"), nonNegative(lo, lower === null ? null : magnitude(lower))));
  }
  return alt(...options);
}

/** y >= 0 between lo and hi. */
function nonNegative(lo: Magnitude, hi: Magnitude | null): Expr {
  const withFraction = (int: bigint, fraction: (budget: number) => Expr): Expr => {
    const length = String(int).length;
    return length > MAX_BOUNDED_DIGITS ? FAIL : seq(lit(String(int)), fraction(MAX_BOUNDED_DIGITS - length));
  };
  if (hi !== null && lo.int === hi.int) {
    return withFraction(lo.int, (n) => fractionIn(lo.frac, lo.inclusive, hi.frac, hi.inclusive, n));
  }
  const options = [withFraction(lo.int, (n) => fractionIn(lo.frac, lo.inclusive, null, true, n))];
  const middle = naturalsByLength(lo.int + 1n, hi === null ? null : hi.int - 1n);
  for (const { length, expr } of middle) {
    const budget = MAX_BOUNDED_DIGITS - length;
    options.push(seq(expr, budget > 0 ? rep(seq(lit("."), anyDigits(1, budget)), 0, 1) : EPSILON));
  }
  if (hi !== null) options.push(withFraction(hi.int, (n) => fractionIn("", true, hi.frac, hi.inclusive, n)));
  return alt(...options);
}

/**
 * The optional `.digits` part, with at most `budget` digits, such that 0.digits lies between 0.lo
 * and 0.hi (hi null: no upper bound). No fraction counts as 0.
 */
function fractionIn(
  lo: string,
  loInclusive: boolean,
  hi: string | null,
  hiInclusive: boolean,
  budget: number,
): Expr {
  const zeroOk = lo === "" && loInclusive && (hi === null || hi !== "" || hiInclusive);
  const digits = budget > 0 ? fractionDigits(lo, loInclusive, hi, hiInclusive, budget) : FAIL;
  return alt(zeroOk ? EPSILON : FAIL, seq(lit("."), digits));
}

/** Strings of 1..n digits d with 0.lo <= 0.d <= 0.hi (strict where not inclusive). */
function fractionDigits(
  lo: string,
  loInclusive: boolean,
  hi: string | null,
  hiInclusive: boolean,
  n: number,
): Expr {
  const noLower = lo === "" && loInclusive;
  if (noLower && hi === null) return anyDigits(1, n);
  const dl = noLower ? 0 : Number(lo[0] ?? "0");
  const dh = hi === null ? 9 : Number(hi[0] ?? "0");
  if (dl > dh) return FAIL;
  const loRest = noLower ? "" : lo.slice(1);
  const hiRest = hi === null ? null : hi.slice(1);
  if (dl === dh)
    return seq(lit(String(dl)), rest(loRest, loInclusive || noLower, hiRest, hiInclusive, n - 1));
  // The lowest digit is free when what follows it cannot fall below lo; the highest likewise.
  const lowFree = noLower || (loRest === "" && loInclusive);
  const highFree = hi === null;
  const from = lowFree ? dl : dl + 1;
  const to = highFree ? dh : dh - 1;
  const options: Expr[] = [];
  if (!lowFree) options.push(seq(lit(String(dl)), rest(loRest, loInclusive, null, true, n - 1)));
  if (from <= to) options.push(seq(digitRange(from, to), anyDigits(0, n - 1)));
  if (!highFree) options.push(seq(lit(String(dh)), rest("", true, hiRest, hiInclusive, n - 1)));
  return alt(...options);
}

/** 0..n more digits after a digit equal to the bounds' digit at this place. */
function rest(lo: string, loInclusive: boolean, hi: string | null, hiInclusive: boolean, n: number): Expr {
  const emptyOk = lo === "" && loInclusive && (hi === null || hi !== "" || hiInclusive);
  return alt(emptyOk ? EPSILON : FAIL, n > 0 ? fractionDigits(lo, loInclusive, hi, hiInclusive, n) : FAIL);
}
