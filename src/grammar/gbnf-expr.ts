/**
 * GBNF right-hand sides as data. The compilers build these instead of text so that the builder can
 * check the whole grammar before llama.cpp sees it: which rules can finish at all (a rule that can
 * never finish is a trap a sampler walks into and never leaves), left recursion (llama.cpp refuses
 * it), and the size llama.cpp will expand `{m,n}` repetitions to.
 *
 * The constructors simplify as they go, so FAIL (matches nothing) propagates upward and EPSILON
 * (matches the empty string) disappears from sequences.
 */
import { CharSet } from "./char-set.js";

export type Expr =
  /** Literal code points; "" is the empty string. */
  | { readonly kind: "lit"; readonly text: string }
  /** One code point from the set; an empty set matches nothing. */
  | { readonly kind: "set"; readonly set: CharSet }
  | { readonly kind: "ref"; readonly name: string }
  | { readonly kind: "seq"; readonly items: readonly Expr[] }
  /** No options: matches nothing (FAIL). */
  | { readonly kind: "alt"; readonly options: readonly Expr[] }
  | { readonly kind: "rep"; readonly item: Expr; readonly min: number; readonly max: number | null };

export const EPSILON: Expr = { kind: "lit", text: "" };
export const FAIL: Expr = { kind: "alt", options: [] };

export const isFail = (e: Expr): boolean => e.kind === "alt" && e.options.length === 0;
export const isEpsilon = (e: Expr): boolean => e.kind === "lit" && e.text === "";

export const lit = (text: string): Expr => ({ kind: "lit", text });
export const ref = (name: string): Expr => ({ kind: "ref", name });

export function charIn(set: CharSet): Expr {
  if (set.isEmpty) return FAIL;
  const only = set.single;
  return only === undefined ? { kind: "set", set } : lit(String.fromCodePoint(only));
}

export function seq(...parts: Expr[]): Expr {
  const items: Expr[] = [];
  for (const part of parts) {
    if (isFail(part)) return FAIL;
    for (const item of part.kind === "seq" ? part.items : [part]) {
      if (isEpsilon(item)) continue;
      const last = items.at(-1);
      if (item.kind === "lit" && last?.kind === "lit") items[items.length - 1] = lit(last.text + item.text);
      else items.push(item);
    }
  }
  if (items.length === 0) return EPSILON;
  return items.length === 1 ? (items[0] as Expr) : { kind: "seq", items };
}

/** Options that are single characters merge into one set; an empty option makes the rest optional. */
export function alt(...parts: Expr[]): Expr {
  const options: Expr[] = [];
  const seen = new Set<string>();
  let chars = CharSet.EMPTY;
  let charsAt = -1;
  let empty = false;
  for (const part of parts) {
    for (const option of part.kind === "alt" ? part.options : [part]) {
      if (isEpsilon(option)) {
        empty = true;
        continue;
      }
      const single = singleCharSet(option);
      if (single) {
        chars = chars.union(single);
        if (charsAt < 0) {
          charsAt = options.length;
          options.push(option);
        }
        continue;
      }
      const key = render(option);
      if (seen.has(key)) continue;
      seen.add(key);
      options.push(option);
    }
  }
  if (charsAt >= 0) options[charsAt] = charIn(chars);
  const body: Expr = options.length === 1 ? (options[0] as Expr) : { kind: "alt", options };
  return empty ? (options.length === 0 ? EPSILON : rep(body, 0, 1)) : body;
}

export function rep(item: Expr, min: number, max: number | null): Expr {
  if (max !== null && max < min) return FAIL;
  if (max === 0 || isEpsilon(item)) return EPSILON;
  if (isFail(item)) return min === 0 ? EPSILON : FAIL;
  if (min === 1 && max === 1) return item;
  // `(x?)?` and the like: a nested optional adds nothing.
  if (item.kind === "rep" && item.min === 0 && min === 0 && max === 1) return item;
  return { kind: "rep", item, min, max };
}

export const opt = (item: Expr): Expr => rep(item, 0, 1);

function singleCharSet(e: Expr): CharSet | undefined {
  if (e.kind === "set") return e.set;
  if (e.kind === "lit") {
    const cps = [...e.text];
    if (cps.length === 1) return CharSet.of(cps[0]?.codePointAt(0) as number);
  }
  return undefined;
}

// ---- rendering ---------------------------------------------------------------------------------

/** Expressions are immutable, so each is rendered once (alt() compares options by their text). */
const rendered = new WeakMap<Expr, string>();

/** GBNF text of a right-hand side. */
export function render(e: Expr): string {
  let text = rendered.get(e);
  if (text === undefined) {
    text = renderUncached(e);
    rendered.set(e, text);
  }
  return text;
}

function renderUncached(e: Expr): string {
  switch (e.kind) {
    case "alt":
      return e.options.map(renderSeqItem).join(" | ");
    case "seq":
      return e.items.map((i) => (i.kind === "alt" ? `(${render(i)})` : renderAtom(i))).join(" ");
    default:
      return renderAtom(e);
  }
}

function renderSeqItem(e: Expr): string {
  return e.kind === "alt" ? `(${render(e)})` : render(e);
}

function renderAtom(e: Expr): string {
  switch (e.kind) {
    case "lit":
      return `"${[...e.text].map((c) => escapeChar(c.codePointAt(0) as number, LITERAL_SPECIAL)).join("")}"`;
    case "set":
      return renderSet(e.set);
    case "ref":
      return e.name;
    case "rep": {
      const inner = e.item.kind === "seq" || e.item.kind === "alt" || e.item.kind === "rep";
      return `${inner ? `(${render(e.item)})` : renderAtom(e.item)}${quantifier(e.min, e.max)}`;
    }
    default:
      return `(${render(e)})`;
  }
}

function quantifier(min: number, max: number | null): string {
  if (min === 0 && max === 1) return "?";
  if (min === 0 && max === null) return "*";
  if (min === 1 && max === null) return "+";
  if (max === null) return `{${min},}`;
  return min === max ? `{${min}}` : `{${min},${max}}`;
}

const LITERAL_SPECIAL = new Set(['"', "\\"].map((c) => c.codePointAt(0) as number));
// `^` is only special first, but llama.cpp has no `\^` escape, so it is always written in hex.
const CLASS_SPECIAL = new Set(["]", "[", "\\", "-", "^", '"'].map((c) => c.codePointAt(0) as number));

function renderSet(set: CharSet): string {
  const negated = set.complement();
  const [body, prefix] = negated.ranges.length <= set.ranges.length ? [negated, "^"] : [set, ""];
  const parts = body.ranges.map(([a, b]) => {
    const from = escapeChar(a, CLASS_SPECIAL);
    if (a === b) return from;
    const to = escapeChar(b, CLASS_SPECIAL);
    return b === a + 1 ? `${from}${to}` : `${from}-${to}`;
  });
  return `[${prefix}${parts.join("")}]`;
}

/** Printable characters are written as themselves; the rest (and grammar syntax) as hex escapes. */
function escapeChar(cp: number, special: ReadonlySet<number>): string {
  const printable =
    (cp >= 0x20 && cp < 0x7f) ||
    (cp >= 0xa0 && cp < 0xd800 && cp !== 0x2028 && cp !== 0x2029) ||
    (cp > 0xdfff && cp < 0xfff0);
  if (printable && !special.has(cp)) return String.fromCodePoint(cp);
  if (cp === 0x0a) return "\\n";
  if (cp === 0x09) return "\\t";
  if (cp === 0x0d) return "\\r";
  if (cp === 0x22) return '\\"';
  if (cp === 0x5c) return "\\\\";
  const hex = cp.toString(16).toUpperCase();
  if (cp < 0x100) return `\\x${hex.padStart(2, "0")}`;
  if (cp < 0x10000) return `\\u${hex.padStart(4, "0")}`;
  return `\\U${hex.padStart(8, "0")}`;
}
