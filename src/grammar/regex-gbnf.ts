/**
 * JSON Schema `pattern` (an ECMAScript regular expression, read with the `u` flag as validators do)
 * to a GBNF right-hand side for the JSON string whose value the pattern matches.
 *
 * A pattern matches anywhere in the string unless anchored, so an unanchored side gets "any
 * characters" in front or behind. The regular expression speaks of the decoded value while the
 * grammar writes JSON text, so every character class becomes that class *as JSON spells it*: `"`
 * as `\"`, a newline as `\n`, one spelling per character (the one JSON.stringify writes).
 *
 * Supported: literals and escapes, classes (ranges, negation, \d \w \s and their negations), `.`,
 * groups (capturing, `(?:`, named), alternation, quantifiers `* + ? {m} {m,} {m,n}` (lazy ones mean
 * the same set of matches), and `^`/`$` at the ends of the pattern or of its top-level branches.
 * Refused: lookaround, backreferences, word boundaries, Unicode property escapes, and anchors
 * anywhere else.
 */
import { CharSet } from "./char-set.js";
import { alt, EPSILON, type Expr, lit, rep, seq } from "./gbnf-expr.js";
import type { JsonRules } from "./json-rules.js";

export class PatternError extends Error {
  override readonly name = "PatternError";
  /** unsupported: valid syntax we cannot enforce; else the pattern is not a valid regex. */
  constructor(
    message: string,
    readonly unsupported: boolean,
  ) {
    super(message);
  }
}

type RegexNode =
  | { type: "chars"; set: CharSet }
  | { type: "seq"; items: RegexNode[] }
  | { type: "alt"; options: RegexNode[] }
  | { type: "repeat"; item: RegexNode; min: number; max: number | null }
  | { type: "group"; body: RegexNode }
  | { type: "start" }
  | { type: "end" };

const MAX_GROUP_DEPTH = 64;

const cp = (c: string): number => c.codePointAt(0) as number;
const setOf = (text: string): CharSet => CharSet.of(...[...text].map(cp));

const DIGITS = CharSet.range(0x30, 0x39);
const WORD = DIGITS.union(CharSet.range(0x41, 0x5a)).union(CharSet.range(0x61, 0x7a)).union(setOf("_"));
const SPACE = CharSet.fromRanges([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
/** `.` without the `s` flag: anything but a line terminator. */
const DOT = CharSet.ALL.minus(CharSet.of(0x0a, 0x0d, 0x2028, 0x2029));
const SYNTAX_CHARS = new Set([..."^$\\.*+?()[]{}|/-"]);
const CONTROL_ESCAPES: Readonly<Record<string, number>> = { t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d };

/** The string rule (quotes included) for strings whose value `pattern` matches. */
export function compilePattern(pattern: string, rules: JsonRules, hint: string): Expr {
  try {
    new RegExp(pattern, "u");
  } catch {
    throw new PatternError("is not a valid regular expression", false);
  }
  const tree = new RegexParser(pattern).parse();
  const anyChars = rep(rules.char(), 0, null);
  const branches = topLevelBranches(tree).map((branch) => {
    const items = branch.type === "seq" ? [...branch.items] : [branch];
    let anchoredStart = false;
    let anchoredEnd = false;
    while (items[0]?.type === "start") {
      items.shift();
      anchoredStart = true;
    }
    while (items.at(-1)?.type === "end") {
      items.pop();
      anchoredEnd = true;
    }
    for (const item of items) assertNoAnchors(item);
    const body = seq(...items.map((item) => compileNode(item, rules, hint)));
    return seq(anchoredStart ? EPSILON : anyChars, body, anchoredEnd ? EPSILON : anyChars);
  });
  return seq(lit('"'), alt(...branches), lit('"'));
}

/** `^a|b$` and `(^a|^b)` are alternatives each with its own anchors. */
function topLevelBranches(node: RegexNode): RegexNode[] {
  if (node.type === "alt") return node.options.flatMap(topLevelBranches);
  if (node.type === "group") return topLevelBranches(node.body);
  if (node.type === "seq" && node.items.length === 1) return topLevelBranches(node.items[0] as RegexNode);
  return [node];
}

function assertNoAnchors(node: RegexNode): void {
  switch (node.type) {
    case "start":
    case "end":
      throw new PatternError("uses ^ or $ inside the pattern (only at its start and end)", true);
    case "seq":
      node.items.forEach(assertNoAnchors);
      break;
    case "alt":
      node.options.forEach(assertNoAnchors);
      break;
    case "repeat":
      assertNoAnchors(node.item);
      break;
    case "group":
      assertNoAnchors(node.body);
      break;
  }
}

function compileNode(node: RegexNode, rules: JsonRules, hint: string): Expr {
  switch (node.type) {
    case "chars": {
      const encoded = rules.encodedCharIn(node.set);
      return encoded.kind === "alt" ? rules.builder.rule(`${hint}-char`, encoded) : encoded;
    }
    case "seq":
      return seq(...node.items.map((i) => compileNode(i, rules, hint)));
    case "alt":
      return alt(...node.options.map((o) => compileNode(o, rules, hint)));
    case "group":
      return compileNode(node.body, rules, hint);
    case "repeat":
      return rules.builder.repeat(`${hint}-part`, compileNode(node.item, rules, hint), node.min, node.max);
    default:
      throw new PatternError("uses ^ or $ inside the pattern (only at its start and end)", true);
  }
}

/** Recursive descent over code points; the syntax was already checked by `new RegExp(p, "u")`. */
class RegexParser {
  private readonly chars: string[];
  private pos = 0;
  private depth = 0;

  constructor(pattern: string) {
    this.chars = [...pattern];
  }

  parse(): RegexNode {
    const node = this.alternation();
    if (this.pos < this.chars.length) throw new PatternError("is not a valid regular expression", false);
    return node;
  }

  private peek(offset = 0): string | undefined {
    return this.chars[this.pos + offset];
  }

  private next(): string {
    const c = this.chars[this.pos++];
    if (c === undefined) throw new PatternError("is not a valid regular expression", false);
    return c;
  }

  private alternation(): RegexNode {
    const options = [this.sequence()];
    while (this.peek() === "|") {
      this.pos++;
      options.push(this.sequence());
    }
    return options.length === 1 ? (options[0] as RegexNode) : { type: "alt", options };
  }

  private sequence(): RegexNode {
    const items: RegexNode[] = [];
    while (this.pos < this.chars.length && this.peek() !== "|" && this.peek() !== ")")
      items.push(this.term());
    return { type: "seq", items };
  }

  private term(): RegexNode {
    let node = this.atom();
    for (;;) {
      const bounds = this.quantifier();
      if (!bounds) return node;
      if (node.type === "start" || node.type === "end") {
        throw new PatternError("is not a valid regular expression", false);
      }
      if (this.peek() === "?") this.pos++; // lazy: the same set of matches
      node = { type: "repeat", item: node, min: bounds[0], max: bounds[1] };
    }
  }

  private quantifier(): [number, number | null] | undefined {
    const c = this.peek();
    if (c === "*" || c === "+" || c === "?") {
      this.pos++;
      return c === "*" ? [0, null] : c === "+" ? [1, null] : [0, 1];
    }
    if (c !== "{") return undefined;
    const rest = this.chars.slice(this.pos).join("");
    const m = /^\{(\d+)(,(\d*))?\}/.exec(rest);
    if (!m) throw new PatternError("is not a valid regular expression", false);
    this.pos += [...m[0]].length;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? null : Number(m[3]);
    if (!Number.isSafeInteger(min) || (max !== null && !Number.isSafeInteger(max))) {
      throw new PatternError("has a repetition count that is too large", true);
    }
    return [min, max];
  }

  private atom(): RegexNode {
    const c = this.next();
    switch (c) {
      case "^":
        return { type: "start" };
      case "$":
        return { type: "end" };
      case ".":
        return { type: "chars", set: DOT };
      case "[":
        return { type: "chars", set: this.characterClass() };
      case "\\":
        return { type: "chars", set: this.escape(false) };
      case "(":
        return this.group();
      default:
        return { type: "chars", set: CharSet.of(cp(c)) };
    }
  }

  private group(): RegexNode {
    if (++this.depth > MAX_GROUP_DEPTH) throw new PatternError("nests groups too deeply", true);
    if (this.peek() === "?") {
      this.pos++;
      const kind = this.next();
      if (kind === "<" && this.peek() !== "=" && this.peek() !== "!") {
        while (this.next() !== ">") {} // a named group: the name does not matter here
      } else if (kind !== ":") {
        throw new PatternError("uses lookahead or lookbehind, which a grammar cannot express", true);
      }
    }
    const body = this.alternation();
    if (this.next() !== ")") throw new PatternError("is not a valid regular expression", false);
    this.depth--;
    return { type: "group", body };
  }

  private characterClass(): CharSet {
    const negated = this.peek() === "^";
    if (negated) this.pos++;
    let set = CharSet.EMPTY;
    while (this.peek() !== "]") {
      const from = this.classAtom();
      if (this.peek() === "-" && this.peek(1) !== "]" && this.peek(1) !== undefined) {
        this.pos++;
        const to = this.classAtom();
        const a = from.single;
        const b = to.single;
        if (a === undefined || b === undefined || a > b) {
          throw new PatternError("is not a valid regular expression", false);
        }
        set = set.union(CharSet.range(a, b));
      } else {
        set = set.union(from);
      }
    }
    this.pos++;
    return negated ? set.complement() : set;
  }

  private classAtom(): CharSet {
    const c = this.next();
    return c === "\\" ? this.escape(true) : CharSet.of(cp(c));
  }

  /** After a backslash. Inside a class `\b` is a backspace and `\-` a hyphen. */
  private escape(inClass: boolean): CharSet {
    const c = this.next();
    switch (c) {
      case "d":
        return DIGITS;
      case "D":
        return DIGITS.complement();
      case "w":
        return WORD;
      case "W":
        return WORD.complement();
      case "s":
        return SPACE;
      case "S":
        return SPACE.complement();
      case "b":
        if (inClass) return CharSet.of(0x08);
        throw new PatternError("uses a word boundary (\\b), which a grammar cannot express", true);
      case "B":
        throw new PatternError("uses a word boundary (\\B), which a grammar cannot express", true);
      case "p":
      case "P":
        throw new PatternError("uses a Unicode property escape (\\p{...}), which is not supported", true);
      case "k":
        throw new PatternError("uses a backreference, which a grammar cannot express", true);
      case "0":
        return CharSet.of(0);
      case "c":
        return CharSet.of(cp(this.next()) % 32);
      case "x":
        return CharSet.of(this.hex(2));
      case "u":
        return CharSet.of(this.unicodeEscape());
      default:
        if (c >= "1" && c <= "9") {
          throw new PatternError("uses a backreference, which a grammar cannot express", true);
        }
        if (CONTROL_ESCAPES[c] !== undefined) return CharSet.of(CONTROL_ESCAPES[c]);
        if (SYNTAX_CHARS.has(c)) return CharSet.of(cp(c));
        throw new PatternError("is not a valid regular expression", false);
    }
  }

  private hex(digits: number): number {
    let text = "";
    for (let i = 0; i < digits; i++) text += this.next();
    if (!/^[0-9a-fA-F]+$/.test(text)) throw new PatternError("is not a valid regular expression", false);
    return Number.parseInt(text, 16);
  }

  /** `\uXXXX`, `\u{X...}`, and a surrogate pair written as two escapes is one code point. */
  private unicodeEscape(): number {
    if (this.peek() === "{") {
      this.pos++;
      let text = "";
      while (this.peek() !== "}") text += this.next();
      this.pos++;
      return Number.parseInt(text, 16);
    }
    const first = this.hex(4);
    if (first >= 0xd800 && first <= 0xdbff && this.peek() === "\\" && this.peek(1) === "u") {
      const save = this.pos;
      this.pos += 2;
      if (this.peek() !== "{") {
        const second = this.hex(4);
        if (second >= 0xdc00 && second <= 0xdfff)
          return 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
      }
      this.pos = save;
    }
    return first;
  }
}
