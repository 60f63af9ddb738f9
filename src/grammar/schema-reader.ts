/**
 * Reads one level of a schema into a Shape (schema-shape.ts): checks every keyword's value, refuses
 * the keywords a grammar cannot enforce (naming where they are), ignores the ones that only
 * describe, and combines `type`, `enum`/`const`, `anyOf`/`oneOf`, `allOf` and `$ref` by
 * intersection. Nested subschemas are kept unread for the emitter.
 */
import { invalidSchema, type SchemaPath, unsupported } from "./schema-errors.js";
import { isPlainObject, type Located, type ResolvedRef, resolveRef } from "./schema-refs.js";
import {
  ALL_TYPES,
  ANY,
  type ArrayRules,
  type Conjunction,
  intersect,
  type Keyed,
  NOTHING,
  type NumberRules,
  type NumericBound,
  type ObjectRules,
  type Shape,
  type ShapeContext,
  type StringRules,
  type TypeName,
  typed,
} from "./schema-shape.js";
import { isStringFormat, type StringFormat } from "./string-formats.js";

/** Keywords that only describe; they constrain nothing. */
const DESCRIPTIVE = new Set([
  "title",
  "description",
  "examples",
  "default",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
  "$anchor",
  "$dynamicAnchor",
  "$vocabulary",
  // OpenAPI's singular form of examples.
  "example",
  // Definitions are read when a $ref points into them.
  "$defs",
  "definitions",
]);

/** A keyword that only describes (or an `x-` extension): it constrains nothing. */
export function isDescriptiveKeyword(key: string): boolean {
  return DESCRIPTIVE.has(key) || key.startsWith("x-");
}

/** Keywords a grammar cannot enforce, with why. */
const REFUSED: Readonly<Record<string, string>> = {
  multipleOf: "multipleOf cannot be enforced by a grammar",
  not: "not cannot be enforced by a grammar",
  if: "if/then/else cannot be enforced by a grammar",
  // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword, not a thenable
  then: "if/then/else cannot be enforced by a grammar",
  else: "if/then/else cannot be enforced by a grammar",
  patternProperties: "patternProperties is not supported",
  propertyNames: "propertyNames is not supported",
  dependentRequired: "dependentRequired cannot be enforced by a grammar",
  dependentSchemas: "dependentSchemas cannot be enforced by a grammar",
  dependencies: "dependencies cannot be enforced by a grammar",
  unevaluatedProperties: "unevaluatedProperties is not supported (use additionalProperties)",
  unevaluatedItems: "unevaluatedItems is not supported (use items)",
  contains: "contains cannot be enforced by a grammar",
  minContains: "minContains cannot be enforced by a grammar",
  maxContains: "maxContains cannot be enforced by a grammar",
  contentEncoding: "contentEncoding is not supported",
  contentMediaType: "contentMediaType is not supported",
  contentSchema: "contentSchema is not supported",
  $dynamicRef: "$dynamicRef is not supported (use $ref)",
  $recursiveRef: "$recursiveRef is not supported (use $ref)",
  $recursiveAnchor: "$recursiveAnchor is not supported (use $ref)",
};

/** Keywords this reader understands. */
const UNDERSTOOD = new Set([
  "type",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "$ref",
  "properties",
  "required",
  "additionalProperties",
  "minProperties",
  "maxProperties",
  "items",
  "prefixItems",
  "additionalItems",
  "minItems",
  "maxItems",
  "uniqueItems",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
]);

const circularRef = (at: SchemaPath) =>
  invalidSchema(at, "$ref refers back to itself without an object or array in between");

const TYPE_NAMES = new Set(["null", "boolean", "object", "array", "string", "number", "integer"]);
const NUMBER_FORMATS = new Set(["int32", "int64", "float", "double"]);

/** How deep `anyOf`/`allOf`/`$ref` may nest within one level before we refuse. */
const MAX_INLINE_DEPTH = 32;
/** Subschemas read per compilation, all levels together. */
export const MAX_SCHEMAS_READ = 20_000;

export class SchemaReader implements ShapeContext {
  private readonly refChain: string[] = [];
  private depth = 0;
  private reads = 0;

  constructor(
    private readonly root: unknown,
    readonly strict: boolean,
  ) {}

  readConj(conj: Conjunction): Shape {
    return conj.reduce<Shape>((acc, located) => intersect(acc, this.read(located), this, located.path), ANY);
  }

  read(located: Located): Shape {
    const { schema, path } = located;
    if (schema === true) return ANY;
    if (schema === false) return NOTHING;
    if (!isPlainObject(schema)) throw invalidSchema(path, "a schema must be an object or a boolean");
    if (++this.reads > MAX_SCHEMAS_READ) throw invalidSchema([], "the schema is too complex to compile");
    if (++this.depth > MAX_INLINE_DEPTH) throw invalidSchema(path, "anyOf, allOf and $ref nest too deeply");
    try {
      return this.readObject(schema, path);
    } finally {
      this.depth--;
    }
  }

  /** Follows bare $refs to a target that is more than a $ref. */
  resolve(shape: Extract<Shape, { kind: "ref" }>): Shape {
    const seen: string[] = [];
    let current: Shape = shape;
    while (current.kind === "ref") {
      const target = resolveRef(this.root, current.ref, current.at);
      if (seen.includes(target.key)) throw circularRef(current.at);
      seen.push(target.key);
      current = this.readTarget(target, current.at);
    }
    return current;
  }

  private readObject(schema: Readonly<Record<string, unknown>>, path: SchemaPath): Shape {
    for (const key of Object.keys(schema)) {
      if (UNDERSTOOD.has(key) || isDescriptiveKeyword(key)) continue;
      throw unsupported([...path, key], REFUSED[key] ?? `${key} is not a keyword we support`);
    }
    if (
      schema.$ref !== undefined &&
      Object.keys(schema).every((k) => k === "$ref" || isDescriptiveKeyword(k))
    ) {
      return { kind: "ref", ref: schema.$ref, at: [...path, "$ref"] };
    }
    const at = (key: string): SchemaPath => [...path, key];
    const parts: Shape[] = [this.typedLevel(schema, path)];
    if (schema.enum !== undefined) {
      if (!Array.isArray(schema.enum)) throw invalidSchema(at("enum"), "enum must be an array");
      parts.push({ kind: "values", values: schema.enum, at: at("enum") });
    }
    if (Object.hasOwn(schema, "const"))
      parts.push({ kind: "values", values: [schema.const], at: at("const") });
    for (const key of ["anyOf", "oneOf"] as const) {
      // oneOf is read as anyOf: "exactly one" cannot be enforced, and schemas that use oneOf almost
      // always have branches that cannot both match.
      if (schema[key] !== undefined) {
        const options = this.subschemas(schema[key], at(key)).map((s) => this.read(s));
        parts.push({ kind: "union", options });
      }
    }
    if (schema.allOf !== undefined) {
      for (const s of this.subschemas(schema.allOf, at("allOf"))) parts.push(this.read(s));
    }
    if (schema.$ref !== undefined) parts.push(this.readRef(schema.$ref, at("$ref")));
    return parts.reduce((acc, part) => intersect(acc, part, this, path));
  }

  /** A $ref read in place (inside allOf, or with sibling keywords). */
  private readRef(ref: unknown, at: SchemaPath): Shape {
    return this.readTarget(resolveRef(this.root, ref, at), at);
  }

  /** `at`: where the $ref that leads here is written. */
  private readTarget(target: ResolvedRef, at: SchemaPath): Shape {
    if (this.refChain.includes(target.key)) throw circularRef(at);
    this.refChain.push(target.key);
    try {
      return this.read(target);
    } finally {
      this.refChain.pop();
    }
  }

  private subschemas(value: unknown, at: SchemaPath): Located[] {
    if (!Array.isArray(value) || value.length === 0)
      throw invalidSchema(at, "must be a non-empty array of schemas");
    return value.map((schema, i) => ({ schema, path: [...at, i] }));
  }

  /** `type` and the keywords that constrain one type each. */
  private typedLevel(schema: Readonly<Record<string, unknown>>, path: SchemaPath): Shape {
    const at = (key: string): SchemaPath => [...path, key];
    let types: Set<TypeName> = new Set(ALL_TYPES);
    let integer = false;
    if (schema.type !== undefined) {
      const names = Array.isArray(schema.type) ? schema.type : [schema.type];
      if (names.length === 0 || !names.every((t) => typeof t === "string" && TYPE_NAMES.has(t))) {
        throw invalidSchema(at("type"), "type must be a type name or a non-empty array of them");
      }
      integer = names.includes("integer") && !names.includes("number");
      types = new Set(names.map((t) => (t === "integer" ? "number" : t)) as TypeName[]);
    }
    const number = this.numberRules(schema, path, integer);
    return typed(types, {
      string: this.stringRules(schema, path),
      number,
      object: this.objectRules(schema, path),
      array: this.arrayRules(schema, path),
    });
  }

  private stringRules(schema: Readonly<Record<string, unknown>>, path: SchemaPath): StringRules {
    const formats: Keyed<StringFormat>[] = [];
    const format = schema.format;
    if (format !== undefined) {
      if (typeof format !== "string") throw invalidSchema([...path, "format"], "format must be a string");
      if (isStringFormat(format)) formats.push({ value: format, at: [...path, "format"] });
      else if (!NUMBER_FORMATS.has(format)) {
        throw unsupported([...path, "format"], `format "${format.slice(0, 40)}" is not supported`);
      }
    }
    const pattern = schema.pattern;
    if (pattern !== undefined && typeof pattern !== "string") {
      throw invalidSchema([...path, "pattern"], "pattern must be a string");
    }
    return {
      minLength: this.count(schema, path, "minLength"),
      maxLength: this.count(schema, path, "maxLength"),
      patterns: pattern === undefined ? [] : [{ value: pattern, at: [...path, "pattern"] }],
      formats,
    };
  }

  private numberRules(
    schema: Readonly<Record<string, unknown>>,
    path: SchemaPath,
    integer: boolean,
  ): NumberRules {
    const bound = (key: string, exclusiveKey: string): NumericBound | undefined => {
      const value = this.finite(schema, path, key);
      const exclusive = schema[exclusiveKey];
      // Draft 4 spelled exclusive bounds as a boolean beside minimum/maximum.
      if (typeof exclusive === "boolean")
        return value === undefined ? undefined : { value, exclusive, at: [...path, key] };
      const strict = this.finite(schema, path, exclusiveKey);
      const inclusive = value === undefined ? undefined : { value, exclusive: false, at: [...path, key] };
      const excl =
        strict === undefined ? undefined : { value: strict, exclusive: true, at: [...path, exclusiveKey] };
      if (!inclusive || !excl) return inclusive ?? excl;
      const lower = key === "minimum";
      if (inclusive.value === excl.value) return excl;
      return excl.value > inclusive.value === lower ? excl : inclusive;
    };
    let lower = bound("minimum", "exclusiveMinimum");
    let upper = bound("maximum", "exclusiveMaximum");
    if (schema.format === "int32" || schema.format === "int64") {
      integer = true;
      if (schema.format === "int32") {
        const at = [...path, "format"];
        if (!lower || lower.value < -(2 ** 31)) lower = { value: -(2 ** 31), exclusive: false, at };
        if (!upper || upper.value > 2 ** 31 - 1) upper = { value: 2 ** 31 - 1, exclusive: false, at };
      }
    }
    return { integer, lower, upper };
  }

  private objectRules(schema: Readonly<Record<string, unknown>>, path: SchemaPath): ObjectRules {
    const at = (key: string): SchemaPath => [...path, key];
    const properties = new Map<string, Conjunction>();
    if (schema.properties !== undefined) {
      if (!isPlainObject(schema.properties))
        throw invalidSchema(at("properties"), "properties must be an object");
      for (const [name, sub] of Object.entries(schema.properties)) {
        properties.set(name, [{ schema: sub, path: [...path, "properties", name] }]);
      }
    }
    const required = schema.required;
    if (
      required !== undefined &&
      (!Array.isArray(required) || !required.every((r) => typeof r === "string"))
    ) {
      throw invalidSchema(at("required"), "required must be an array of property names");
    }
    const ap = schema.additionalProperties;
    return {
      properties,
      required: new Set((required as string[] | undefined) ?? []),
      additional:
        ap === undefined
          ? undefined
          : ap === false
            ? false
            : [{ schema: ap, path: at("additionalProperties") }],
      minProperties: this.count(schema, path, "minProperties"),
      maxProperties: this.count(schema, path, "maxProperties"),
    };
  }

  private arrayRules(schema: Readonly<Record<string, unknown>>, path: SchemaPath): ArrayRules {
    const at = (key: string): SchemaPath => [...path, key];
    const one = (key: string): Conjunction | false =>
      schema[key] === false ? false : [{ schema: schema[key], path: at(key) }];
    let prefix: Conjunction[] = [];
    let rest: Conjunction | false = [];
    if (schema.prefixItems !== undefined) {
      if (!Array.isArray(schema.prefixItems))
        throw invalidSchema(at("prefixItems"), "prefixItems must be an array");
      prefix = schema.prefixItems.map((s, i) => [{ schema: s, path: [...at("prefixItems"), i] }]);
      if (schema.items !== undefined) rest = one("items");
    } else if (Array.isArray(schema.items)) {
      // Draft 7 tuples: items as an array, additionalItems for the rest.
      prefix = schema.items.map((s, i) => [{ schema: s, path: [...at("items"), i] }]);
      if (schema.additionalItems !== undefined) rest = one("additionalItems");
    } else if (schema.items !== undefined) {
      rest = one("items");
    }
    const unique = schema.uniqueItems;
    if (unique !== undefined && typeof unique !== "boolean") {
      throw invalidSchema(at("uniqueItems"), "uniqueItems must be a boolean");
    }
    return {
      prefix,
      rest,
      minItems: this.count(schema, path, "minItems"),
      maxItems: this.count(schema, path, "maxItems"),
      uniqueAt: unique === true ? at("uniqueItems") : undefined,
    };
  }

  private count(
    schema: Readonly<Record<string, unknown>>,
    path: SchemaPath,
    key: string,
  ): Keyed<number> | undefined {
    const value = schema[key];
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw invalidSchema([...path, key], `${key} must be a non-negative integer`);
    }
    return { value, at: [...path, key] };
  }

  private finite(
    schema: Readonly<Record<string, unknown>>,
    path: SchemaPath,
    key: string,
  ): number | undefined {
    const value = schema[key];
    if (value === undefined) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value))
      throw invalidSchema([...path, key], `${key} must be a number`);
    return value;
  }
}
