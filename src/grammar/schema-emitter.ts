/**
 * Writes the grammar for a schema: Shapes (schema-shape.ts) to GBNF expressions, one level at a
 * time, reading nested subschemas only when it reaches them. A subschema that is just a `$ref`
 * becomes a reference to one rule per target, which is how recursive schemas stay finite.
 *
 * Layout decisions:
 * - properties come in the order the schema declares them; optional ones may be left out; other
 *   keys (when allowed) come after the declared ones and never repeat a declared name;
 * - whitespace is the shared `ws` rule between tokens (json-rules.ts), none around the document.
 */
import { CharSet } from "./char-set.js";
import { alt, EPSILON, type Expr, FAIL, lit, opt, ref, rep, seq } from "./gbnf-expr.js";
import { encodedLiteral, type JsonRules } from "./json-rules.js";
import {
  boundBeyondDigits,
  decimalInRange,
  decimalOf,
  integerAbove,
  integerBelow,
  integerInRange,
  MAX_BOUNDED_DIGITS,
} from "./number-range-gbnf.js";
import { compilePattern, PatternError } from "./regex-gbnf.js";
import {
  INVALID_SCHEMA,
  invalidSchema,
  SchemaError,
  type SchemaPath,
  UNSUPPORTED_KEYWORD,
  unsupported,
} from "./schema-errors.js";
import type { SchemaReader } from "./schema-reader.js";
import { isPlainObject, resolveRef } from "./schema-refs.js";
import {
  type ArrayRules,
  type Conjunction,
  isUnconstrained,
  type NumberRules,
  type ObjectRules,
  type Shape,
  type StringRules,
  type TypedShape,
} from "./schema-shape.js";
import { formatGrammar } from "./string-formats.js";

/** Nesting of subschemas (objects in arrays in objects ...) before we refuse. */
export const MAX_SCHEMA_DEPTH = 32;
/** Property names are spelled out letter by letter when other keys must avoid them. */
const MAX_NAME_IN_TRIE = 512;

export class SchemaEmitter {
  /** $ref target → its rule. */
  private readonly refRules = new Map<string, Expr>();
  private depth = 0;

  constructor(
    private readonly root: unknown,
    private readonly reader: SchemaReader,
    private readonly rules: JsonRules,
  ) {}

  /** The grammar expression for the whole document. */
  emitRoot(): Expr {
    return this.refRule("#", []);
  }

  /** The value grammar for subschemas that must all hold. */
  emitConj(conj: Conjunction, hint: string, at: SchemaPath): Expr {
    if (++this.depth > MAX_SCHEMA_DEPTH) {
      throw invalidSchema(at, `the schema nests more than ${MAX_SCHEMA_DEPTH} levels deep`);
    }
    try {
      return this.emitShape(this.reader.readConj(conj), hint);
    } finally {
      this.depth--;
    }
  }

  private refRule(refText: unknown, at: SchemaPath): Expr {
    const target = resolveRef(this.root, refText, at);
    const known = this.refRules.get(target.key);
    if (known) return known;
    const last = target.path.at(-1);
    const name = this.rules.builder.reserve(last === undefined ? "schema" : String(last));
    const rule = ref(name);
    this.refRules.set(target.key, rule);
    this.rules.builder.define(name, this.emitConj([target], name, target.path));
    return rule;
  }

  private emitShape(shape: Shape, hint: string): Expr {
    switch (shape.kind) {
      case "union":
        return alt(...shape.options.map((o) => this.emitShape(o, hint)));
      case "values":
        return alt(...shape.values.map((v) => this.literal(v)));
      case "typed":
        return this.emitTyped(shape, hint);
      case "ref":
        // A bare $ref: the target's one rule, which is how recursion stays finite.
        return this.refRule(shape.ref, shape.at);
    }
  }

  private emitTyped(shape: TypedShape, hint: string): Expr {
    if (isUnconstrained(shape)) return this.rules.value();
    const options: Expr[] = [];
    for (const type of shape.types) {
      switch (type) {
        case "object":
          options.push(this.emitObject(shape.object, hint));
          break;
        case "array":
          options.push(this.emitArray(shape.array, hint));
          break;
        case "string":
          options.push(this.emitString(shape.string, hint));
          break;
        case "number":
          options.push(this.emitNumber(shape.number));
          break;
        case "boolean":
          options.push(this.rules.boolean());
          break;
        case "null":
          options.push(lit("null"));
          break;
      }
    }
    return alt(...options);
  }

  /** One JSON value as written, with the same whitespace freedom as any other value. */
  private literal(value: unknown): Expr {
    const ws = this.rules.ws();
    const list = (open: string, parts: Expr[], close: string): Expr =>
      parts.length === 0
        ? seq(lit(open), ws, lit(close))
        : seq(
            lit(open),
            ws,
            ...parts.flatMap((p, i) => (i === 0 ? [p] : [this.rules.comma(), p])),
            ws,
            lit(close),
          );
    if (Array.isArray(value))
      return list(
        "[",
        value.map((v) => this.literal(v)),
        "]",
      );
    if (isPlainObject(value)) {
      const members = Object.entries(value).map(([k, v]) =>
        seq(lit(JSON.stringify(k)), ws, lit(":"), ws, this.literal(v)),
      );
      return list("{", members, "}");
    }
    return lit(JSON.stringify(value));
  }

  // ---- objects ---------------------------------------------------------------------------------

  private emitObject(rules: ObjectRules, hint: string): Expr {
    if (rules.impossible) return FAIL;
    const additional = rules.additional ?? (this.reader.strict ? false : []);
    const entries = [...rules.properties];
    for (const name of rules.required) {
      if (rules.properties.has(name)) continue;
      if (additional === false) return FAIL;
      entries.push([name, additional]);
    }
    if (rules.minProperties && rules.minProperties.value > rules.required.size) {
      throw unsupported(
        rules.minProperties.at,
        "minProperties beyond the number of required properties is not supported",
      );
    }
    if (rules.maxProperties) {
      if (rules.maxProperties.value < rules.required.size) return FAIL;
      if (additional !== false || rules.maxProperties.value < entries.length) {
        throw unsupported(
          rules.maxProperties.at,
          "maxProperties below the number of possible properties is not supported",
        );
      }
    }
    const unconstrained = entries.length === 0 && additional !== false && additional.length === 0;
    if (unconstrained && !rules.minProperties && !rules.maxProperties) return this.rules.object();
    const { builder } = this.rules;
    const ws = this.rules.ws();
    const comma = this.rules.comma();
    const member = (key: Expr, value: Expr): Expr => seq(key, ws, lit(":"), ws, value);
    const items = entries.map(([name, conj]) => {
      const value = builder.rule(
        childHint(hint, name),
        this.emitConj(conj, childHint(hint, name), conj[0]?.path ?? []),
      );
      return { name, kv: member(lit(JSON.stringify(name)), value), required: rules.required.has(name) };
    });
    let other: Expr | undefined;
    if (additional !== false) {
      const long = entries.find(([name]) => name.length > MAX_NAME_IN_TRIE);
      if (long) {
        throw unsupported(
          long[1][0]?.path ?? [],
          `a property name longer than ${MAX_NAME_IN_TRIE} characters is not supported where other keys are allowed`,
        );
      }
      const key =
        entries.length === 0
          ? this.rules.string()
          : builder.rule(`${hint}-other-key`, this.keyOtherThan(entries.map(([n]) => n)));
      const value = builder.rule(
        `${hint}-other-value`,
        this.emitConj(additional, `${hint}-other-value`, additional[0]?.path ?? []),
      );
      other = builder.rule(`${hint}-other`, member(key, value));
    }
    const n = items.length;
    const firstRequired = items.findIndex((i) => i.required);
    // after(i): items i.. once something was written (each present item is preceded by a comma).
    // after(i) is shared by after(i-1) and the start "item i-1 comes first" up to the first
    // required item, so it is a rule there; beyond that it is used once and written in place.
    const shared = firstRequired < 0 ? n : firstRequired + 1;
    // Built from the end in one pass (a recursive build would copy the tail once per item).
    const after: Expr[] = [];
    const reversed: Expr[] = other ? [rep(seq(comma, other), 0, null)] : [];
    for (let i = n; i >= 1; i--) {
      const item = items[i];
      if (item) reversed.push(item.required ? seq(comma, item.kv) : opt(seq(comma, item.kv)));
      if (i <= shared) {
        const rule = builder.rule(`${hint}-after-${i}`, seq(...reversed.reverse()));
        reversed.length = 0;
        reversed.push(rule);
        after[i] = rule;
      }
    }
    // first(0): the alternatives "item i is the first one written", up to the first required item.
    const starts: Expr[] = [];
    let i = 0;
    for (; i < n; i++) {
      const item = items[i] as (typeof items)[number];
      starts.push(seq(item.kv, after[i + 1] ?? EPSILON));
      if (item.required) break;
    }
    if (i === n && other) starts.push(seq(other, rep(seq(comma, other), 0, null)));
    const body = alt(...starts);
    return firstRequired >= 0
      ? seq(lit("{"), ws, body, ws, lit("}"))
      : seq(lit("{"), ws, opt(seq(body, ws)), lit("}"));
  }

  /** A JSON key that is none of `names`: a trie over the names, one spelling per character. */
  private keyOtherThan(names: readonly string[]): Expr {
    type Node = { end: boolean; next: Map<number, Node> };
    const root: Node = { end: false, next: new Map() };
    for (const name of names) {
      let node = root;
      for (const ch of name) {
        const cp = ch.codePointAt(0) as number;
        let child = node.next.get(cp);
        if (!child) {
          child = { end: false, next: new Map() };
          node.next.set(cp, child);
        }
        node = child;
      }
      node.end = true;
    }
    const anyChar = this.rules.builder.rule("json-key-char", this.rules.encodedCharIn(CharSet.ALL));
    const rest = rep(anyChar, 0, null);
    const notIn = (node: Node): Expr =>
      alt(
        node.end ? FAIL : EPSILON,
        ...[...node.next].map(([cp, child]) => seq(encodedLiteral(String.fromCodePoint(cp)), notIn(child))),
        seq(this.rules.encodedCharIn(CharSet.ALL.minus(CharSet.of(...node.next.keys()))), rest),
      );
    return seq(lit('"'), notIn(root), lit('"'));
  }

  // ---- arrays ----------------------------------------------------------------------------------

  private emitArray(rules: ArrayRules, hint: string): Expr {
    const min = rules.minItems?.value ?? 0;
    const max = rules.maxItems?.value ?? null;
    if (rules.uniqueAt && (max === null || max > 1)) {
      throw unsupported(rules.uniqueAt, "uniqueItems cannot be enforced by a grammar");
    }
    if (max !== null && min > max) return FAIL;
    if (
      rules.prefix.length === 0 &&
      rules.rest !== false &&
      rules.rest.length === 0 &&
      min === 0 &&
      max === null
    ) {
      return this.rules.array();
    }
    const { builder } = this.rules;
    const ws = this.rules.ws();
    const comma = this.rules.comma();
    if (max === 0) return seq(lit("["), ws, lit("]"));
    const prefix = rules.prefix.slice(0, max ?? undefined).map((conj, j) => {
      const h = childHint(hint, `item-${j}`);
      return builder.rule(h, this.emitConj(conj, h, conj[0]?.path ?? []));
    });
    const p = prefix.length;
    const restHint = childHint(hint, "items");
    const item =
      rules.rest === false || (max !== null && max <= p)
        ? undefined
        : builder.rule(restHint, this.emitConj(rules.rest, restHint, rules.rest[0]?.path ?? []));
    // tail: the elements after the first, each preceded by a comma, built from the end. Every
    // 32nd level is a rule of its own, so long tuples do not nest expressions thousands deep.
    const fewest = Math.max(0, min - p);
    const most = max === null ? null : max - p;
    let tail = item
      ? builder.repeat(`${restHint}-next`, seq(comma, item), fewest, most)
      : fewest > 0
        ? FAIL
        : EPSILON;
    for (let j = p - 1; j >= 1; j--) {
      const here = seq(comma, prefix[j] as Expr, tail);
      tail = j < min ? here : opt(here);
      if (j % 32 === 0) tail = builder.rule(childHint(hint, `from-${j}`), tail);
    }
    const head =
      p > 0
        ? seq(prefix[0] as Expr, tail)
        : item
          ? seq(
              item,
              builder.repeat(
                `${restHint}-next`,
                seq(comma, item),
                Math.max(0, min - 1),
                max === null ? null : max - 1,
              ),
            )
          : FAIL;
    return min > 0 ? seq(lit("["), ws, head, ws, lit("]")) : seq(lit("["), ws, opt(seq(head, ws)), lit("]"));
  }

  // ---- strings ---------------------------------------------------------------------------------

  private emitString(rules: StringRules, hint: string): Expr {
    const [pattern, second] = rules.patterns;
    if (second) throw unsupported(second.at, "more than one pattern for one string is not supported");
    const [format, otherFormat] = rules.formats;
    if (otherFormat)
      throw unsupported(otherFormat.at, "more than one format for one string is not supported");
    const min = rules.minLength?.value ?? 0;
    const max = rules.maxLength?.value ?? null;
    const lengthAt = rules.minLength && min > 0 ? rules.minLength.at : rules.maxLength?.at;
    if (pattern && format) throw unsupported(format.at, "format together with pattern is not supported");
    if ((pattern || format) && lengthAt) {
      throw unsupported(
        lengthAt,
        `minLength/maxLength together with ${pattern ? "pattern" : "format"} is not supported`,
      );
    }
    if (pattern) {
      try {
        return compilePattern(pattern.value, this.rules, `${hint}-pattern`);
      } catch (e) {
        if (!(e instanceof PatternError)) throw e;
        throw new SchemaError(
          e.unsupported ? UNSUPPORTED_KEYWORD : INVALID_SCHEMA,
          pattern.at,
          `pattern ${e.message}`,
        );
      }
    }
    if (format) return formatGrammar(format.value, this.rules.builder);
    if (min === 0 && max === null) return this.rules.string();
    if (max !== null && min > max) return FAIL;
    return seq(
      lit('"'),
      this.rules.builder.repeat(`${hint}-chars`, this.rules.codePoint(), min, max),
      lit('"'),
    );
  }

  // ---- numbers ---------------------------------------------------------------------------------

  private emitNumber(rules: NumberRules): Expr {
    const { lower, upper } = rules;
    if (rules.integer) {
      const min = lower ? integerAbove(decimalOf(lower.value), lower.exclusive) : null;
      const max = upper ? integerBelow(decimalOf(upper.value), upper.exclusive) : null;
      const beyond = boundBeyondDigits(min, max);
      if (beyond === "min" && lower) throw this.tooManyDigits(lower.at);
      if (beyond === "max" && upper) throw this.tooManyDigits(upper.at);
      if (min === null && max === null) return this.rules.integer();
      return integerInRange(min, max);
    }
    if (!lower && !upper) return this.rules.number();
    const limit = 10 ** MAX_BOUNDED_DIGITS;
    if (lower && lower.value >= limit) throw this.tooManyDigits(lower.at);
    if (upper && upper.value <= -limit) throw this.tooManyDigits(upper.at);
    return decimalInRange(
      lower ? { value: decimalOf(lower.value), inclusive: !lower.exclusive } : null,
      upper ? { value: decimalOf(upper.value), inclusive: !upper.exclusive } : null,
    );
  }

  private tooManyDigits(at: SchemaPath): SchemaError {
    return unsupported(
      at,
      `a bound that needs numbers of more than ${MAX_BOUNDED_DIGITS} digits is not supported`,
    );
  }
}

function childHint(hint: string, part: string): string {
  return hint === "schema" || hint === "root" ? part : `${hint}-${part}`;
}
