/**
 * Collects named rules and writes the grammar. Everything that makes a grammar safe to hand to
 * llama.cpp is decided here, once, whatever built the rules:
 *
 * - limits on rule count, text size and the size llama.cpp expands repetitions to, checked while
 *   rules are added so a hostile schema stops early;
 * - repetitions llama.cpp would mishandle are rewritten: it turns `{m,n}` above 2000 into `{m,}`
 *   (silently unbounded) and refuses a repeated group whose expansion is large, so items repeated
 *   more than once become rules of their own and long counts are split into blocks;
 * - rules that can never finish are pruned (a sampler that enters one never leaves), and a grammar
 *   whose root cannot finish is an error;
 * - left recursion, which llama.cpp refuses at load, is an error here with a clear cause.
 */
import { alt, type Expr, FAIL, isFail, ref, render, rep, seq } from "./gbnf-expr.js";

export interface GrammarLimits {
  maxRules: number;
  /** Characters of GBNF text. */
  maxChars: number;
  /** Symbols after llama.cpp expands `{m,n}` (each repetition copies its item). */
  maxExpandedSymbols: number;
}

export const DEFAULT_GRAMMAR_LIMITS: GrammarLimits = {
  maxRules: 20_000,
  maxChars: 1024 * 1024,
  maxExpandedSymbols: 200_000,
};

/**
 * Repetition counts up to this are written as they are (llama.cpp's own ceiling is 2000); larger
 * ones are split into blocks, which keeps every grammar small.
 */
const DIRECT_REPEAT_MAX = 256;
/** Counts above this are refused: even split into blocks they are not worth a grammar. */
export const MAX_REPEAT_COUNT = 1_000_000;

export type GrammarBuildFailure = "too_large" | "empty" | "left_recursive";

export class GrammarBuildError extends Error {
  override readonly name = "GrammarBuildError";
  constructor(
    readonly reason: GrammarBuildFailure,
    message: string,
  ) {
    super(message);
  }
}

export class GbnfBuilder {
  /** undefined: reserved (a recursive reference may point at it before it is defined). */
  private readonly rules = new Map<string, Expr | undefined>();
  private readonly nameByBody = new Map<string, string>();
  private chars = 0;

  constructor(private readonly limits: GrammarLimits = DEFAULT_GRAMMAR_LIMITS) {}

  /** A fresh rule name derived from `hint` (any text); define it later with `define`. */
  reserve(hint: string): string {
    if (this.rules.size >= this.limits.maxRules) {
      throw new GrammarBuildError(
        "too_large",
        `the grammar would need more than ${this.limits.maxRules} rules`,
      );
    }
    const base = ruleName(hint);
    let name = base;
    for (let i = 2; this.rules.has(name) || name === "root"; i++) name = `${base}-${i}`;
    this.rules.set(name, undefined);
    return name;
  }

  define(name: string, body: Expr): Expr {
    const text = render(body);
    this.chars += name.length + text.length + 6;
    if (this.chars > this.limits.maxChars) {
      throw new GrammarBuildError(
        "too_large",
        `the grammar would be larger than ${this.limits.maxChars} characters`,
      );
    }
    this.rules.set(name, body);
    if (!this.nameByBody.has(text)) this.nameByBody.set(text, name);
    return ref(name);
  }

  isDefined(name: string): boolean {
    return this.rules.get(name) !== undefined;
  }

  /**
   * `body` as a named rule, or as itself when it is one symbol already. Identical bodies share one
   * rule.
   */
  rule(hint: string, body: Expr): Expr {
    if (isFail(body) || isSymbol(body)) return body;
    const existing = this.nameByBody.get(render(body));
    if (existing !== undefined) return ref(existing);
    return this.define(this.reserve(hint), body);
  }

  /** `item{min,max}` (max null: unbounded) in a form llama.cpp expands exactly and cheaply. */
  repeat(hint: string, item: Expr, min: number, max: number | null): Expr {
    if ((max ?? min) > MAX_REPEAT_COUNT || min > MAX_REPEAT_COUNT) {
      throw new GrammarBuildError(
        "too_large",
        `a repetition count above ${MAX_REPEAT_COUNT} is not supported`,
      );
    }
    const once = (max === null ? min : max) <= 1;
    const unit = once ? item : this.rule(hint, item);
    if (min <= DIRECT_REPEAT_MAX && (max === null || max <= DIRECT_REPEAT_MAX)) return rep(unit, min, max);
    // Long counts: blocks of B copies, so no single count exceeds DIRECT_REPEAT_MAX.
    const block = Math.ceil(Math.sqrt(Math.max(min, max ?? 0)));
    const blockRule = this.rule(`${hint}-block`, rep(unit, block, block));
    const exactly = (n: number): Expr =>
      seq(rep(blockRule, Math.floor(n / block), Math.floor(n / block)), rep(unit, n % block, n % block));
    if (max === null) return seq(exactly(min), rep(unit, 0, null));
    // Up to K more: a whole blocks (a < q) then 0..B-1, or exactly q blocks then 0..r.
    const extra = max - min;
    const q = Math.floor(extra / block);
    const r = extra % block;
    const upTo =
      q === 0
        ? rep(unit, 0, r)
        : alt(
            seq(rep(blockRule, 0, q - 1), rep(unit, 0, block - 1)),
            seq(rep(blockRule, q, q), rep(unit, 0, r)),
          );
    return seq(exactly(min), upTo);
  }

  /**
   * The grammar text with `root` first, then the rules it reaches in the order it reaches them.
   * Throws a GrammarBuildError when the root cannot finish, on left recursion, or over the limits.
   */
  build(root: Expr): string {
    const all = new Map<string, Expr>([["root", root]]);
    for (const [name, body] of this.rules) {
      if (body === undefined) throw new Error(`grammar rule ${name} was reserved but never defined`);
      all.set(name, body);
    }
    const productive = productiveRules(all);
    if (!productive.has("root")) {
      throw new GrammarBuildError("empty", "no JSON document satisfies the schema");
    }
    const pruned = new Map<string, Expr>();
    const order: string[] = [];
    // Depth first from the root, with a stack of our own: rule chains can be thousands long.
    const stack = ["root"];
    while (stack.length > 0) {
      const name = stack.pop() as string;
      if (pruned.has(name)) continue;
      const body = prune(all.get(name) as Expr, productive);
      pruned.set(name, body);
      order.push(name);
      stack.push(...refsIn(body).reverse());
    }
    // `root ::= schema` with `schema` used nowhere else: write its body as the root instead.
    for (;;) {
      const rootBody = pruned.get("root") as Expr;
      if (rootBody.kind !== "ref") break;
      const uses = order
        .flatMap((name) => refsIn(pruned.get(name) as Expr))
        .filter((n) => n === rootBody.name);
      if (uses.length !== 1) break;
      pruned.set("root", pruned.get(rootBody.name) as Expr);
      pruned.delete(rootBody.name);
      order.splice(order.indexOf(rootBody.name), 1);
    }
    const recursive = leftRecursiveRule(pruned);
    if (recursive !== undefined) {
      throw new GrammarBuildError(
        "left_recursive",
        "the schema refers back to itself without nesting (a $ref cycle through anyOf, allOf or $ref alone)",
      );
    }
    const expanded = order.reduce((n, name) => n + expandedSize(pruned.get(name) as Expr), 0);
    if (expanded > this.limits.maxExpandedSymbols) {
      throw new GrammarBuildError(
        "too_large",
        "the grammar would be too large once its repetitions are expanded",
      );
    }
    const text = order.map((name) => `${name} ::= ${render(pruned.get(name) as Expr)}`).join("\n");
    if (text.length > this.limits.maxChars) {
      throw new GrammarBuildError(
        "too_large",
        `the grammar would be larger than ${this.limits.maxChars} characters`,
      );
    }
    return `${text}\n`;
  }
}

/** GBNF rule names are `[a-zA-Z0-9-]+`; hints are property paths and $ref names. */
function ruleName(hint: string): string {
  const name = hint
    .replace(/[^a-zA-Z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-|-$/g, "")
    .slice(0, 48)
    .replace(/-$/, "");
  return name === "" ? "r" : name;
}

function isSymbol(e: Expr): boolean {
  return e.kind === "ref" || e.kind === "set" || (e.kind === "lit" && [...e.text].length <= 1);
}

function refsIn(e: Expr, out: string[] = []): string[] {
  switch (e.kind) {
    case "ref":
      out.push(e.name);
      break;
    case "seq":
      for (const i of e.items) refsIn(i, out);
      break;
    case "alt":
      for (const o of e.options) refsIn(o, out);
      break;
    case "rep":
      refsIn(e.item, out);
      break;
  }
  return out;
}

/** The rules that derive at least one finite string (the usual fixpoint). */
function productiveRules(rules: ReadonlyMap<string, Expr>): Set<string> {
  const done = new Set<string>();
  const can = (e: Expr): boolean => {
    switch (e.kind) {
      case "lit":
        return true;
      case "set":
        return !e.set.isEmpty;
      case "ref":
        return done.has(e.name);
      case "seq":
        return e.items.every(can);
      case "alt":
        return e.options.some(can);
      case "rep":
        return e.min === 0 || can(e.item);
    }
  };
  growToFixpoint(rules, done, can);
  return done;
}

/**
 * Adds to `set` every rule whose body satisfies `holds` (which reads `set`), until nothing changes.
 * A rule is looked at again only when a rule it refers to joins, so long chains stay linear.
 */
function growToFixpoint(
  rules: ReadonlyMap<string, Expr>,
  set: Set<string>,
  holds: (body: Expr) => boolean,
): void {
  const users = new Map<string, string[]>();
  for (const [name, body] of rules) {
    for (const used of new Set(refsIn(body))) {
      const list = users.get(used);
      if (list) list.push(name);
      else users.set(used, [name]);
    }
  }
  const queue = [...rules.keys()];
  while (queue.length > 0) {
    const name = queue.pop() as string;
    if (set.has(name) || !holds(rules.get(name) as Expr)) continue;
    set.add(name);
    queue.push(...(users.get(name) ?? []));
  }
}

/** References to rules that cannot finish become FAIL, which the constructors propagate. */
function prune(e: Expr, productive: ReadonlySet<string>): Expr {
  switch (e.kind) {
    case "ref":
      return productive.has(e.name) ? e : FAIL;
    case "seq": {
      const items = e.items.map((i) => prune(i, productive));
      // Unchanged parts stay the same objects, so their rendered text is not computed again.
      return items.every((item, i) => item === e.items[i]) ? e : seq(...items);
    }
    case "alt": {
      const options = e.options.map((o) => prune(o, productive));
      return options.every((option, i) => option === e.options[i]) ? e : alt(...options);
    }
    case "rep": {
      const item = prune(e.item, productive);
      return item === e.item ? e : rep(item, e.min, e.max);
    }
    default:
      return e;
  }
}

function leftRecursiveRule(rules: ReadonlyMap<string, Expr>): string | undefined {
  const nullable = new Set<string>();
  const isNullable = (e: Expr): boolean => {
    switch (e.kind) {
      case "lit":
        return e.text === "";
      case "set":
        return false;
      case "ref":
        return nullable.has(e.name);
      case "seq":
        return e.items.every(isNullable);
      case "alt":
        return e.options.some(isNullable);
      case "rep":
        return e.min === 0 || isNullable(e.item);
    }
  };
  growToFixpoint(rules, nullable, isNullable);
  // Rules that can come first in a rule, before it has matched any character.
  const leading = (e: Expr, out: Set<string>): Set<string> => {
    switch (e.kind) {
      case "ref":
        out.add(e.name);
        break;
      case "seq":
        for (const item of e.items) {
          leading(item, out);
          if (!isNullable(item)) break;
        }
        break;
      case "alt":
        for (const o of e.options) leading(o, out);
        break;
      case "rep":
        leading(e.item, out);
        break;
    }
    return out;
  };
  const edges = new Map([...rules].map(([name, body]) => [name, [...leading(body, new Set())]]));
  // Depth-first search for a cycle, iteratively (rule chains can be thousands long).
  const state = new Map<string, "open" | "closed">();
  for (const start of rules.keys()) {
    if (state.has(start)) continue;
    const stack: [string, number][] = [[start, 0]];
    state.set(start, "open");
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [string, number];
      const next = edges.get(top[0])?.[top[1]++];
      if (next === undefined) {
        state.set(top[0], "closed");
        stack.pop();
      } else if (state.get(next) === "open") {
        return next;
      } else if (!state.has(next)) {
        state.set(next, "open");
        stack.push([next, 0]);
      }
    }
  }
  return undefined;
}

/** Roughly the symbols llama.cpp allocates for a right-hand side after expanding repetitions. */
function expandedSize(e: Expr): number {
  switch (e.kind) {
    case "lit":
      return Math.max(1, [...e.text].length);
    case "set":
      return e.set.ranges.length;
    case "ref":
      return 1;
    case "seq":
      return e.items.reduce((n, i) => n + expandedSize(i), 0);
    case "alt":
      return e.options.reduce((n, o) => n + expandedSize(o) + 1, 0);
    case "rep": {
      const copies = e.max === null ? e.min + 1 : e.max;
      return expandedSize(e.item) * Math.max(1, copies) + 2;
    }
  }
}
