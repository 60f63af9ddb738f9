import { describe, expect, it } from "vitest";
import { ServiceError } from "../../src/core/errors.js";
import type { JsonSchema } from "../../src/core/messages.js";
import { compileJsonSchema } from "../../src/grammar/json-schema-gbnf.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";

/**
 * What a grammar cannot enforce is refused with a 400 that names the keyword — never ignored —
 * and hostile schemas are refused before they cost much.
 */

const PARAM = "response_format.json_schema.schema";

function refusal(
  schema: JsonSchema | boolean,
  options: { strict?: boolean; param?: string } = {},
): ServiceError {
  try {
    compileJsonSchema(schema, { param: PARAM, ...options });
  } catch (e) {
    expect(e).toBeInstanceOf(ServiceError);
    const error = e as ServiceError;
    expect(error.kind).toBe("invalid_request");
    expect(error.status).toBe(400);
    return error;
  }
  throw new Error(`compiled without a refusal: ${JSON.stringify(schema).slice(0, 200)}`);
}

const object = (properties: Record<string, unknown>) => ({
  type: "object",
  properties,
  required: Object.keys(properties),
  additionalProperties: false,
});

describe("keywords a grammar cannot enforce", () => {
  const refused: [string, JsonSchema, string][] = [
    ["multipleOf", object({ n: { type: "integer", multipleOf: 5 } }), ".properties.n.multipleOf"],
    [
      "uniqueItems",
      object({ tags: { type: "array", items: { type: "string" }, uniqueItems: true } }),
      ".properties.tags.uniqueItems",
    ],
    ["not", object({ a: { not: { type: "null" } } }), ".properties.a.not"],
    // biome-ignore lint/suspicious/noThenProperty: the JSON Schema keyword, not a thenable
    ["if", { type: "object", if: { required: ["a"] }, then: { required: ["b"] } }, ".if"],
    [
      "patternProperties",
      { type: "object", patternProperties: { "^x": { type: "string" } } },
      ".patternProperties",
    ],
    ["propertyNames", { type: "object", propertyNames: { maxLength: 3 } }, ".propertyNames"],
    ["dependentRequired", { type: "object", dependentRequired: { a: ["b"] } }, ".dependentRequired"],
    ["contains", { type: "array", contains: { const: 1 } }, ".contains"],
    ["unevaluatedProperties", { type: "object", unevaluatedProperties: false }, ".unevaluatedProperties"],
    [
      "nullable (OpenAPI 3.0, not JSON Schema)",
      object({ a: { type: "string", nullable: true } }),
      ".properties.a.nullable",
    ],
    ["format", { type: "string", format: "uri" }, ".format"],
    ["$ref", object({ a: { $ref: "https://example.com/schema.json" } }), ".properties.a.$ref"],
    ["$ref", { $ref: "#node", $defs: { node: { $anchor: "node", type: "string" } } }, ".$ref"],
    ["pattern", { type: "string", pattern: "^(?=a)\\w+$" }, ".pattern"],
    ["pattern", { type: "string", pattern: "(?<!a)b" }, ".pattern"],
    ["pattern", { type: "string", pattern: "^(a)\\1$" }, ".pattern"],
    ["pattern", { type: "string", pattern: "\\bword\\b" }, ".pattern"],
    ["pattern", { type: "string", pattern: "^\\p{L}+$" }, ".pattern"],
    ["pattern", { type: "string", pattern: "a^b" }, ".pattern"],
    ["maxLength", { type: "string", pattern: "^a+$", maxLength: 3 }, ".maxLength"],
    ["format", { type: "string", pattern: "^a+$", format: "date" }, ".format"],
    ["minProperties", { type: "object", properties: { a: {} }, minProperties: 1 }, ".minProperties"],
    ["maxProperties", { type: "object", maxProperties: 2 }, ".maxProperties"],
    ["minimum", { type: "integer", minimum: 1e20 }, ".minimum"],
    ["exclusiveMaximum", { type: "number", exclusiveMaximum: -1e16 }, ".exclusiveMaximum"],
  ];
  for (const [keyword, schema, path] of refused) {
    it(`refuses ${keyword}, naming ${path}`, () => {
      const error = refusal(schema);
      expect(error.code).toBe("unsupported_schema_keyword");
      expect(error.param).toBe(PARAM + path);
      expect(error.message).toContain(keyword.split(" ")[0]);
      expect(error.message).toContain(`schema${path}`);
    });
  }

  it("names properties that are not identifiers in brackets, and works without a prefix", () => {
    const schema = object({ "my field": { type: "array", uniqueItems: true } });
    expect(refusal(schema).param).toBe(`${PARAM}.properties["my field"].uniqueItems`);
    expect(refusal(schema, { param: undefined }).param).toBe('properties["my field"].uniqueItems');
    expect(refusal({ anyOf: [{ type: "string" }, { type: "number", multipleOf: 2 }] }).param).toBe(
      `${PARAM}.anyOf[1].multipleOf`,
    );
  });

  it("names the keyword where a $ref leads, inside the definitions", () => {
    const schema = {
      $defs: { tag: { type: "array", uniqueItems: true } },
      ...object({ tags: { $ref: "#/$defs/tag" } }),
    };
    expect(refusal(schema).param).toBe(`${PARAM}.$defs.tag.uniqueItems`);
  });

  it("accepts what only looks like a refusal: uniqueItems false or with at most one item, lazy quantifiers", () => {
    expect(() => compileJsonSchema({ type: "array", uniqueItems: false })).not.toThrow();
    expect(() => compileJsonSchema({ type: "array", uniqueItems: true, maxItems: 1 })).not.toThrow();
    expect(() => compileJsonSchema({ type: "string", pattern: "^a+?b*?$" })).not.toThrow();
    expect(() =>
      compileJsonSchema({ type: "object", properties: { a: {} }, required: ["a"], minProperties: 1 }),
    ).not.toThrow();
  });
});

describe("malformed and unsatisfiable schemas", () => {
  const invalid: [string, JsonSchema | boolean, string | null][] = [
    ["an unknown type", { type: "strin" }, ".type"],
    ["a negative minLength", { type: "string", minLength: -1 }, ".minLength"],
    ["an empty anyOf", { anyOf: [] }, ".anyOf"],
    ["a required that is not a list", { type: "object", required: "a" }, ".required"],
    ["a $ref to nothing", object({ a: { $ref: "#/$defs/missing" } }), ".properties.a.$ref"],
    ["a pattern that is not a regular expression", { type: "string", pattern: "(" }, ".pattern"],
    ["a schema that is not an object", object({ a: 5 as unknown as JsonSchema }), ".properties.a"],
    ["a value no document can have", { type: "string", enum: [1, 2] }, ""],
    ["false", false, ""],
    [
      "an object that must contain itself forever",
      { type: "object", properties: { a: { $ref: "#" } }, required: ["a"] },
      "",
    ],
    [
      "a $ref cycle with nothing in between",
      { $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" },
      "",
    ],
    [
      "left recursion through anyOf",
      { $defs: { a: { anyOf: [{ $ref: "#/$defs/a" }, { type: "null" }] } }, $ref: "#/$defs/a" },
      "",
    ],
    [
      "a $ref cycle through allOf",
      { $defs: { a: { allOf: [{ $ref: "#/$defs/a" }, { type: "string" }] } }, $ref: "#/$defs/a" },
      ".$defs.a.allOf[0].$ref",
    ],
    [
      "additionalProperties false beside allOf (JSON Schema's classic trap: nothing qualifies)",
      {
        type: "object",
        additionalProperties: false,
        allOf: [{ properties: { a: { type: "string" } }, required: ["a"] }],
      },
      "",
    ],
  ];
  for (const [what, schema, path] of invalid) {
    it(`refuses ${what}`, () => {
      const error = refusal(schema);
      expect(error.code).toBe("invalid_schema");
      expect(error.param).toBe(path === null ? null : PARAM + path);
    });
  }
});

describe("limits against hostile schemas", () => {
  it("refuses a schema larger than 256 KiB", () => {
    const properties = Object.fromEntries(
      Array.from({ length: 8000 }, (_, i) => [`field_number_${i}`, { type: "string" }]),
    );
    const error = refusal({ type: "object", properties });
    expect(error.code).toBe("invalid_schema");
    expect(error.message).toMatch(/larger than 256 KiB/);
  });

  it("refuses a schema nested deeper than 32 levels", () => {
    let schema: JsonSchema = { type: "string" };
    for (let i = 0; i < 40; i++) schema = object({ a: schema });
    const error = refusal(schema);
    expect(error.code).toBe("invalid_schema");
    expect(error.message).toMatch(/nests more than/);
  });

  it("refuses a document nested deeper than 64 levels before reading it", () => {
    let doc: unknown = 1;
    for (let i = 0; i < 100; i++) doc = [doc];
    expect(refusal({ const: doc }).message).toMatch(/nests more than 64/);
  });

  it("refuses anyOf inside allOf that multiplies out too far", () => {
    const choice = {
      anyOf: [1, 2, 3, 4, 5].map((n) => ({ type: "object", properties: { [`k${n}`]: { type: "string" } } })),
    };
    const error = refusal({ allOf: [choice, choice, choice] });
    expect(error.code).toBe("unsupported_schema_keyword");
    expect(error.message).toMatch(/more than 64 alternatives/);
  });

  it("refuses a JavaScript object graph whose shared subtrees multiply out", () => {
    let schema: JsonSchema = { type: "string" };
    for (let i = 0; i < 20; i++) schema = { anyOf: [schema, schema, schema] };
    expect(refusal(schema).message).toMatch(/too many values|nests more than/);
  });

  it("compiles large honest schemas: long property lists and tuples, without deep recursion", async () => {
    const names = Array.from({ length: 3000 }, (_, i) => `field_${i}`);
    const properties = Object.fromEntries(names.map((n) => [n, { type: "boolean" }]));
    expect(compileJsonSchema({ type: "object", properties }, { strict: true }).gbnf).toMatch(/field_2999/);
    const required = { type: "object", properties, required: names, additionalProperties: false };
    expect(compileJsonSchema(required).gbnf).toMatch(/field_2999/);
    const tuple = { type: "array", prefixItems: names.map((_, i) => ({ const: i })), items: false };
    const { gbnf } = compileJsonSchema(tuple);
    const matcher = await gbnfMatcher(gbnf);
    const all = names.map((_, i) => i);
    expect(matcher.accepts(JSON.stringify(all))).toBe(true);
    expect(matcher.accepts(JSON.stringify(all.slice(0, 1234)))).toBe(true);
    expect(matcher.accepts(JSON.stringify([...all, 1]))).toBe(false);
  });

  it("compiles long but honest counts by splitting them into blocks", () => {
    expect(compileJsonSchema({ type: "string", minLength: 3000, maxLength: 50000 }).gbnf).toMatch(/\{\d+\}/);
    expect(() => compileJsonSchema({ type: "string", maxLength: 5_000_000 })).toThrow(/repetition count/);
  });
});
