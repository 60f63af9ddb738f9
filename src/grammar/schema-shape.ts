/**
 * What a schema allows, in a form that can be intersected. JSON Schema keywords at one level each
 * constrain one type and combine by "and"; `allOf` is "and" too; `anyOf` is "or"; `enum` is a list.
 * So a schema is read (schema-reader.ts) into a Shape, `allOf` and `$ref` with siblings become
 * intersections of Shapes, and only then is a grammar written (schema-emitter.ts).
 *
 * Subschemas below an object or array (property values, items) stay unread — a list of schemas
 * that must all hold (`Conjunction`) — until the emitter gets there. That keeps reading one level
 * at a time, which is what makes recursive schemas finite.
 */

import { type SchemaPath, unsupported } from "./schema-errors.js";
import type { Located } from "./schema-refs.js";
import { isPlainObject } from "./schema-refs.js";
import type { StringFormat } from "./string-formats.js";

/** Subschemas that must all hold; empty: anything. */
export type Conjunction = readonly Located[];

/** "integer" is not a type here: it is `number` with `NumberRules.integer`. */
export type TypeName = "null" | "boolean" | "object" | "array" | "string" | "number";
export const ALL_TYPES: readonly TypeName[] = ["object", "array", "string", "number", "boolean", "null"];

export interface Keyed<T> {
  readonly value: T;
  readonly at: SchemaPath;
}

export interface NumericBound {
  readonly value: number;
  readonly exclusive: boolean;
  readonly at: SchemaPath;
}

export interface StringRules {
  readonly minLength?: Keyed<number>;
  readonly maxLength?: Keyed<number>;
  readonly patterns: readonly Keyed<string>[];
  readonly formats: readonly Keyed<StringFormat>[];
}

export interface NumberRules {
  readonly integer: boolean;
  readonly lower?: NumericBound;
  readonly upper?: NumericBound;
}

export interface ObjectRules {
  /** In declaration order. */
  readonly properties: ReadonlyMap<string, Conjunction>;
  readonly required: ReadonlySet<string>;
  /** false: no other keys; undefined: the schema did not say (strict mode decides). */
  readonly additional?: Conjunction | false;
  readonly minProperties?: Keyed<number>;
  readonly maxProperties?: Keyed<number>;
  /** A required key is forbidden: no object qualifies. */
  readonly impossible?: boolean;
}

export interface ArrayRules {
  readonly prefix: readonly Conjunction[];
  /** Items after the prefix; false: none. */
  readonly rest: Conjunction | false;
  readonly minItems?: Keyed<number>;
  readonly maxItems?: Keyed<number>;
  /** Where `uniqueItems: true` was said, if it was. */
  readonly uniqueAt?: SchemaPath;
}

export interface TypedShape {
  readonly kind: "typed";
  readonly types: ReadonlySet<TypeName>;
  readonly string: StringRules;
  readonly number: NumberRules;
  readonly object: ObjectRules;
  readonly array: ArrayRules;
}

export type Shape =
  | TypedShape
  | { readonly kind: "union"; readonly options: readonly Shape[] }
  /** `enum` / `const`: exactly these values. */
  | { readonly kind: "values"; readonly values: readonly unknown[]; readonly at: SchemaPath }
  /**
   * A bare `$ref`, kept unresolved so the emitter can point at the target's one rule (this is
   * what lets `anyOf: [{"$ref": "#"}, ...]` recurse). Resolved only when intersected or matched.
   */
  | { readonly kind: "ref"; readonly ref: unknown; readonly at: SchemaPath };

export const NO_STRING_RULES: StringRules = { patterns: [], formats: [] };
export const NO_NUMBER_RULES: NumberRules = { integer: false };
export const NO_OBJECT_RULES: ObjectRules = { properties: new Map(), required: new Set() };
export const NO_ARRAY_RULES: ArrayRules = { prefix: [], rest: [] };

export function typed(
  types: Iterable<TypeName>,
  rules: Partial<Omit<TypedShape, "kind" | "types">> = {},
): TypedShape {
  return {
    kind: "typed",
    types: new Set(types),
    string: rules.string ?? NO_STRING_RULES,
    number: rules.number ?? NO_NUMBER_RULES,
    object: rules.object ?? NO_OBJECT_RULES,
    array: rules.array ?? NO_ARRAY_RULES,
  };
}

export const ANY: Shape = typed(ALL_TYPES);

/** Every type, no constraint: any JSON value. */
export function isUnconstrained(shape: TypedShape): boolean {
  const { string: s, number: n, object: o, array: a } = shape;
  return (
    shape.types.size === 6 &&
    s.minLength === undefined &&
    s.maxLength === undefined &&
    s.patterns.length === 0 &&
    s.formats.length === 0 &&
    !n.integer &&
    !n.lower &&
    !n.upper &&
    o.properties.size === 0 &&
    o.required.size === 0 &&
    (o.additional === undefined || (o.additional !== false && o.additional.length === 0)) &&
    !o.minProperties &&
    !o.maxProperties &&
    !o.impossible &&
    a.prefix.length === 0 &&
    a.rest !== false &&
    a.rest.length === 0 &&
    !a.minItems &&
    !a.maxItems &&
    !a.uniqueAt
  );
}

export const NOTHING: Shape = typed([]);

/** How many options an intersection of unions may multiply out to before we refuse. */
export const MAX_UNION_OPTIONS = 64;

/** What intersecting and matching need from the reader. */
export interface ShapeContext {
  /** The target of a bare $ref, read in place. */
  resolve(shape: Extract<Shape, { kind: "ref" }>): Shape;
  /** Reads lazily held subschemas, when an enum value has to be checked against them. */
  readConj(c: Conjunction): Shape;
  /** Strict mode: an object schema that does not mention additionalProperties allows none. */
  readonly strict: boolean;
}

/** a and b; `at` is where the intersection was asked for (for a refusal). */
export function intersect(a: Shape, b: Shape, ctx: ShapeContext, at: SchemaPath): Shape {
  // Before resolving anything: a bare $ref met with "anything" must stay a reference.
  if (a.kind === "typed" && isUnconstrained(a)) return b;
  if (b.kind === "typed" && isUnconstrained(b)) return a;
  if (a.kind === "ref") return intersect(ctx.resolve(a), b, ctx, at);
  if (b.kind === "ref") return intersect(a, ctx.resolve(b), ctx, at);
  if (a.kind === "union" || b.kind === "union") {
    const [u, other] = a.kind === "union" ? [a, b] : [b as Extract<Shape, { kind: "union" }>, a];
    const options = u.options.flatMap((o) => {
      const r = intersect(o, other, ctx, at);
      return r.kind === "union" ? r.options : [r];
    });
    if (options.length > MAX_UNION_OPTIONS) {
      throw unsupported(at, `anyOf and allOf multiply out to more than ${MAX_UNION_OPTIONS} alternatives`);
    }
    return { kind: "union", options };
  }
  if (a.kind === "values" || b.kind === "values") {
    const [v, other] = a.kind === "values" ? [a, b] : [b as Extract<Shape, { kind: "values" }>, a];
    return { kind: "values", values: v.values.filter((x) => matches(other, x, ctx)), at: v.at };
  }
  return {
    kind: "typed",
    types: new Set([...a.types].filter((t) => b.types.has(t))),
    string: {
      minLength: larger(a.string.minLength, b.string.minLength),
      maxLength: smaller(a.string.maxLength, b.string.maxLength),
      patterns: uniqueByValue([...a.string.patterns, ...b.string.patterns]),
      formats: uniqueByValue([...a.string.formats, ...b.string.formats]),
    },
    number: {
      integer: a.number.integer || b.number.integer,
      lower: tighter(a.number.lower, b.number.lower, 1),
      upper: tighter(a.number.upper, b.number.upper, -1),
    },
    object: intersectObjects(a.object, b.object),
    array: intersectArrays(a.array, b.array),
  };
}

function intersectObjects(a: ObjectRules, b: ObjectRules): ObjectRules {
  const valueIn = (r: ObjectRules, name: string): Conjunction | false =>
    r.properties.get(name) ?? (r.additional === undefined ? [] : r.additional);
  const properties = new Map<string, Conjunction>();
  const forbidden = new Set<string>();
  for (const name of new Set([...a.properties.keys(), ...b.properties.keys()])) {
    const x = valueIn(a, name);
    const y = valueIn(b, name);
    if (x === false || y === false) forbidden.add(name);
    else properties.set(name, [...x, ...y]);
  }
  const required = new Set([...a.required, ...b.required]);
  const additional =
    a.additional === false || b.additional === false
      ? false
      : a.additional === undefined && b.additional === undefined
        ? undefined
        : [...(a.additional ?? []), ...(b.additional ?? [])];
  const impossible =
    a.impossible ||
    b.impossible ||
    [...required].some((n) => forbidden.has(n) || (!properties.has(n) && additional === false));
  return {
    properties,
    required,
    additional,
    minProperties: larger(a.minProperties, b.minProperties),
    maxProperties: smaller(a.maxProperties, b.maxProperties),
    impossible,
  };
}

function intersectArrays(a: ArrayRules, b: ArrayRules): ArrayRules {
  const at = (r: ArrayRules, i: number): Conjunction | false => r.prefix[i] ?? r.rest;
  const both = (x: Conjunction | false, y: Conjunction | false): Conjunction | false =>
    x === false || y === false ? false : [...x, ...y];
  const prefix: Conjunction[] = [];
  let maxItems = smaller(a.maxItems, b.maxItems);
  let rest = both(a.rest, b.rest);
  for (let i = 0; i < Math.max(a.prefix.length, b.prefix.length); i++) {
    const item = both(at(a, i), at(b, i));
    if (item === false) {
      // No item may stand at position i: the array ends before it.
      maxItems = smaller(maxItems, { value: i, at: [] });
      rest = false;
      break;
    }
    prefix.push(item);
  }
  return {
    prefix,
    rest,
    minItems: larger(a.minItems, b.minItems),
    maxItems,
    uniqueAt: a.uniqueAt ?? b.uniqueAt,
  };
}

function larger(a?: Keyed<number>, b?: Keyed<number>): Keyed<number> | undefined {
  return a === undefined ? b : b === undefined ? a : b.value > a.value ? b : a;
}

function smaller(a?: Keyed<number>, b?: Keyed<number>): Keyed<number> | undefined {
  return a === undefined ? b : b === undefined ? a : b.value < a.value ? b : a;
}

/** The stricter bound; `direction` 1 for lower bounds, -1 for upper. */
function tighter(a: NumericBound | undefined, b: NumericBound | undefined, direction: 1 | -1) {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.value === b.value) return a.exclusive ? a : b;
  return (b.value - a.value) * direction > 0 ? b : a;
}

function uniqueByValue<T>(items: Keyed<T>[]): Keyed<T>[] {
  return items.filter((item, i) => items.findIndex((o) => o.value === item.value) === i);
}

// ---- does a value fit? (enum and const against the other keywords) -----------------------------

export function matches(shape: Shape, value: unknown, ctx: ShapeContext): boolean {
  switch (shape.kind) {
    case "union":
      return shape.options.some((o) => matches(o, value, ctx));
    case "values":
      return shape.values.some((v) => jsonEqual(v, value));
    case "typed":
      return matchesTyped(shape, value, ctx);
    case "ref":
      return matches(ctx.resolve(shape), value, ctx);
  }
}

function matchesTyped(shape: TypedShape, value: unknown, ctx: ShapeContext): boolean {
  const fits = (c: Conjunction, v: unknown) => matches(ctx.readConj(c), v, ctx);
  if (value === null) return shape.types.has("null");
  if (typeof value === "boolean") return shape.types.has("boolean");
  if (typeof value === "number") {
    const { integer, lower, upper } = shape.number;
    if (!shape.types.has("number") || (integer && !Number.isInteger(value))) return false;
    if (lower && (lower.exclusive ? value <= lower.value : value < lower.value)) return false;
    return !(upper && (upper.exclusive ? value >= upper.value : value > upper.value));
  }
  if (typeof value === "string") {
    const rules = shape.string;
    if (!shape.types.has("string")) return false;
    // Running a caller's regex over a caller's string is a denial-of-service risk: refuse instead.
    const pattern = rules.patterns[0];
    if (pattern) throw unsupported(pattern.at, "pattern together with enum or const is not supported");
    const format = rules.formats[0];
    if (format) throw unsupported(format.at, "format together with enum or const is not supported");
    const length = [...value].length;
    return (
      length >= (rules.minLength?.value ?? 0) &&
      length <= (rules.maxLength?.value ?? Number.POSITIVE_INFINITY)
    );
  }
  if (Array.isArray(value)) {
    const rules = shape.array;
    if (!shape.types.has("array")) return false;
    if (
      value.length < (rules.minItems?.value ?? 0) ||
      value.length > (rules.maxItems?.value ?? Number.POSITIVE_INFINITY)
    ) {
      return false;
    }
    if (rules.uniqueAt && value.some((v, i) => value.findIndex((w) => jsonEqual(v, w)) !== i)) return false;
    return value.every((item, i) => {
      const schema = rules.prefix[i] ?? rules.rest;
      return schema !== false && fits(schema, item);
    });
  }
  if (isPlainObject(value)) {
    const rules = shape.object;
    if (!shape.types.has("object") || rules.impossible) return false;
    const keys = Object.keys(value);
    if ([...rules.required].some((k) => !Object.hasOwn(value, k))) return false;
    if (keys.length < (rules.minProperties?.value ?? 0)) return false;
    if (keys.length > (rules.maxProperties?.value ?? Number.POSITIVE_INFINITY)) return false;
    return keys.every((k) => {
      const schema = rules.properties.get(k) ?? rules.additional ?? (ctx.strict ? false : []);
      return schema !== false && fits(schema, value[k]);
    });
  }
  return false;
}

/** Equality of JSON values, as `enum` and `const` define it (key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
    );
  }
  return false;
}
