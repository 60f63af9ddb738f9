import { describe, expect, it } from "vitest";
import type { JsonSchema } from "../../src/core/messages.js";
import {
  compiledGrammarCacheSize,
  compileJsonSchema,
  JSON_OBJECT_GBNF,
  JSON_VALUE_GBNF,
} from "../../src/grammar/json-schema-gbnf.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";
import { schemaValidator } from "../helpers/json-schema-validator.js";

/**
 * Each case: the grammar must load in llama.cpp, accept every valid value (written compactly and
 * pretty-printed) and reject every invalid one, with ajv confirming which is which. `accept` and
 * `reject` are raw texts: whitespace rules, and spellings of valid values the grammar leaves out on
 * purpose (its language is "valid documents, spelled our way").
 */
interface Case {
  name: string;
  schema: JsonSchema | boolean;
  strict?: boolean;
  draft?: "07";
  valid: unknown[];
  invalid: unknown[];
  accept?: string[];
  reject?: string[];
}

const person = {
  type: "object",
  properties: { name: { type: "string" }, age: { type: "integer" }, active: { type: "boolean" } },
  required: ["name", "age", "active"],
  additionalProperties: false,
};

const cases: Case[] = [
  {
    name: "an object whose properties are all required (OpenAI strict style)",
    schema: person,
    strict: true,
    valid: [
      { name: "Ann", age: 30, active: true },
      { name: "", age: -5, active: false },
      {
        name: 'quote " backslash \\ newline \n tab \t emoji 😀 control \u0001 del \u007f',
        age: 0,
        active: true,
      },
    ],
    invalid: [
      { name: "Ann", age: 30 },
      { name: "Ann", age: 30.5, active: true },
      { name: "Ann", age: 30, active: true, extra: 1 },
      { name: 1, age: 30, active: true },
      [],
      "Ann",
    ],
    accept: ['{"name":"\\u0041nn","age":1,"active":true}', '{ "name" : "x" , "age" : 1 , "active" : false }'],
    // Declared order only; no whitespace around the document; at most one run between tokens.
    reject: [
      '{"age":30,"name":"Ann","active":true}',
      ' {"name":"x","age":1,"active":true}',
      '{"name":"x","age":1,"active":true} ',
      '{  "name":"x","age":1,"active":true}',
      `{\n${" ".repeat(21)}"name":"x","age":1,"active":true}`,
      '{"name":"x","age":01,"active":true}',
    ],
  },
  {
    name: "optional properties that may be left out, in declared order",
    schema: {
      type: "object",
      properties: { a: { type: "string" }, b: { type: "number" }, c: { type: "boolean" } },
      required: ["b"],
      additionalProperties: false,
    },
    valid: [{ b: 1 }, { a: "x", b: 1.5 }, { b: -2e-5, c: true }, { a: "x", b: 2, c: false }],
    invalid: [{}, { a: "x" }, { a: "x", c: true }, { b: 1, d: 1 }, { b: "1" }],
  },
  {
    name: "all-optional properties, possibly none",
    schema: {
      type: "object",
      properties: { a: { type: "null" }, b: { type: "null" } },
      additionalProperties: false,
    },
    valid: [{}, { a: null }, { b: null }, { a: null, b: null }],
    invalid: [{ a: 1 }, { c: null }],
    reject: ["{,}", '{"a":null,}', '{,"b":null}'],
  },
  {
    name: "other keys when additionalProperties is absent (not strict), never repeating a declared one",
    schema: { type: "object", properties: { a: { type: "string" } } },
    valid: [
      {},
      { a: "x" },
      { a: "x", z: [1, { q: null }] },
      { z: 1 },
      { "": 2 },
      { a2: 1 },
      { b: true },
      { "a\n": 1 },
    ],
    invalid: [{ a: 1 }, { a: "x", b: 1, c: { d: [] }, e: 7 }].slice(0, 1),
    accept: ['{"a":"x","b":1,"c":{"d":[]},"e":7}'],
    reject: ['{"a":"x","a":3}', '{"z":1,"a":"x"}'],
  },
  {
    name: "no other keys in strict mode when additionalProperties is absent",
    schema: { type: "object", properties: { a: { type: "string" } } },
    strict: true,
    valid: [{}, { a: "x" }],
    invalid: [],
    reject: ['{"z":1}', '{"a":"x","z":1}'],
  },
  {
    name: "additionalProperties as a schema",
    schema: {
      type: "object",
      properties: { id: { type: "integer" } },
      required: ["id"],
      additionalProperties: { type: "string" },
    },
    valid: [{ id: 1 }, { id: 1, x: "a", y: "b" }],
    invalid: [{ id: 1, x: 2 }, { x: "a" }],
  },
  {
    name: "an object that allows no keys",
    schema: { type: "object", additionalProperties: false },
    valid: [{}],
    invalid: [{ a: 1 }],
  },
  {
    name: "a property whose schema is false is forbidden",
    schema: { type: "object", properties: { x: false } },
    valid: [{}, { y: 1 }],
    invalid: [{ x: 1 }],
  },
  {
    name: "nested objects and arrays",
    schema: {
      type: "object",
      properties: {
        user: {
          type: "object",
          properties: { id: { type: "integer" }, tags: { type: "array", items: { type: "string" } } },
          required: ["id", "tags"],
          additionalProperties: false,
        },
        points: {
          type: "array",
          items: { type: "array", items: { type: "number" }, minItems: 2, maxItems: 2 },
        },
      },
      required: ["user", "points"],
      additionalProperties: false,
    },
    valid: [
      { user: { id: 1, tags: [] }, points: [] },
      {
        user: { id: 1, tags: ["a", "b"] },
        points: [
          [1, 2],
          [-3.25, 4e10],
        ],
      },
    ],
    invalid: [
      { user: { id: 1, tags: [1] }, points: [] },
      { user: { id: 1, tags: [] }, points: [[1]] },
      { user: { id: 1 }, points: [] },
    ],
  },
  {
    name: "type arrays",
    schema: { type: ["string", "null"] },
    valid: ["x", null, ""],
    invalid: [1, true, {}, []],
  },
  {
    name: "integer and number types",
    schema: { type: "array", items: { type: ["integer", "boolean"] } },
    valid: [[1, -2, 0, true, 1234567890123456]],
    invalid: [[1.5], ["1"], [null]],
    reject: ["[-0.5]", "[1e5]", "[+1]", "[12345678901234567]"],
  },
  {
    name: "enum of any JSON values",
    schema: { enum: ["red", 1, null, { a: [1, 2] }, [true], 'with "quotes" and \\ and \n'] },
    valid: ["red", 1, null, { a: [1, 2] }, [true], 'with "quotes" and \\ and \n'],
    invalid: ["blue", 2, { a: [1] }, [false], "Red"],
  },
  {
    name: "enum filtered by type and const",
    schema: {
      type: "object",
      properties: { kind: { type: "string", enum: ["a", 1, "b"] }, v: { const: { k: "v\n" } } },
      required: ["kind", "v"],
      additionalProperties: false,
    },
    valid: [
      { kind: "a", v: { k: "v\n" } },
      { kind: "b", v: { k: "v\n" } },
    ],
    invalid: [
      { kind: 1, v: { k: "v\n" } },
      { kind: "a", v: { k: "v" } },
    ],
  },
  {
    name: "anyOf of different types",
    schema: {
      anyOf: [
        { type: "string", maxLength: 3 },
        { type: "integer", minimum: 10 },
      ],
    },
    valid: ["abc", "", 10, 99],
    invalid: ["abcd", 9, 1.5, null],
  },
  {
    name: "oneOf of disjoint objects (read as anyOf)",
    schema: {
      oneOf: [
        {
          type: "object",
          properties: { kind: { const: "a" }, x: { type: "string" } },
          required: ["kind", "x"],
          additionalProperties: false,
        },
        {
          type: "object",
          properties: { kind: { const: "b" }, y: { type: "number" } },
          required: ["kind", "y"],
          additionalProperties: false,
        },
      ],
    },
    valid: [
      { kind: "a", x: "s" },
      { kind: "b", y: 2 },
    ],
    invalid: [
      { kind: "a", y: 2 },
      { kind: "c", x: "s" },
      { kind: "b", y: "2" },
    ],
  },
  {
    name: "allOf of objects, merged",
    schema: {
      allOf: [
        { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
        { type: "object", properties: { b: { type: "integer" } }, required: ["b"] },
      ],
    },
    valid: [
      { a: "x", b: 1 },
      { a: "x", b: 1, c: null },
    ],
    invalid: [{ a: "x" }, { b: 1 }, { a: 1, b: 1 }],
  },
  {
    name: "allOf where one part closes the object",
    schema: {
      allOf: [
        { type: "object", properties: { a: { type: "string" }, b: {} }, additionalProperties: false },
        { properties: { b: { type: "integer" } }, required: ["b"] },
      ],
    },
    valid: [{ b: 1 }, { a: "x", b: 2 }],
    invalid: [{ b: "s" }, { b: 1, c: 1 }, { a: "x" }],
  },
  {
    // additionalProperties:false beside the $ref closes the object to the keys declared beside it
    // ("note" is declared only in the target), as JSON Schema says.
    name: "$ref with sibling keywords narrows the target",
    schema: {
      $defs: {
        base: {
          type: "object",
          properties: { id: { type: "integer" }, note: { type: "string" } },
          required: ["id"],
        },
      },
      $ref: "#/$defs/base",
      properties: { id: { minimum: 1 } },
      additionalProperties: false,
    },
    valid: [{ id: 1 }, { id: 5 }],
    invalid: [{ id: 0 }, { id: 1, other: 1 }, { id: 5, note: "n" }, {}],
  },
  {
    name: "a recursive tree through $defs",
    schema: {
      $defs: {
        node: {
          type: "object",
          properties: {
            value: { type: "integer" },
            children: { type: "array", items: { $ref: "#/$defs/node" } },
          },
          required: ["value", "children"],
          additionalProperties: false,
        },
      },
      $ref: "#/$defs/node",
    },
    valid: [
      { value: 1, children: [] },
      {
        value: 1,
        children: [
          { value: 2, children: [{ value: 3, children: [] }] },
          { value: 4, children: [] },
        ],
      },
    ],
    invalid: [{ value: 1 }, { value: 1, children: [{ value: "x", children: [] }] }],
  },
  {
    name: "a recursive list through the root (#)",
    schema: {
      type: "object",
      properties: { name: { type: "string" }, next: { anyOf: [{ $ref: "#" }, { type: "null" }] } },
      required: ["name", "next"],
      additionalProperties: false,
    },
    valid: [
      { name: "a", next: null },
      { name: "a", next: { name: "b", next: { name: "c", next: null } } },
    ],
    invalid: [{ name: "a", next: {} }, { name: "a" }],
  },
  {
    name: "definitions (draft 7 style) and a draft 7 tuple",
    draft: "07",
    schema: {
      definitions: { positive: { type: "integer", minimum: 1 } },
      type: "array",
      items: [{ type: "string" }, { $ref: "#/definitions/positive" }],
      additionalItems: { type: "boolean" },
    },
    valid: [[], ["a"], ["a", 1], ["a", 2, true, false]],
    invalid: [[1], ["a", 0], ["a", 1, "x"]],
  },
  {
    name: "prefixItems with no further items",
    schema: { type: "array", prefixItems: [{ type: "string" }, { type: "integer" }], items: false },
    valid: [[], ["a"], ["a", 1]],
    invalid: [[1], ["a", 1, 2], ["a", "b"]],
  },
  {
    name: "prefixItems, items, minItems and maxItems together",
    schema: {
      type: "array",
      prefixItems: [{ const: "x" }],
      items: { type: "boolean" },
      minItems: 2,
      maxItems: 4,
    },
    valid: [
      ["x", true],
      ["x", true, false, true],
    ],
    invalid: [["x"], ["x", true, true, true, true], [true, true], []],
  },
  {
    name: "minItems and maxItems",
    schema: { type: "array", items: { type: "integer" }, minItems: 2, maxItems: 3 },
    valid: [
      [1, 2],
      [1, 2, 3],
    ],
    invalid: [[], [1], [1, 2, 3, 4]],
  },
  {
    name: "string minLength and maxLength count code points",
    schema: { type: "string", minLength: 2, maxLength: 4 },
    valid: ["ab", "abcd", "😀😀", "\n\t", '"\\'],
    invalid: ["a", "abcde", "😀", ""],
    accept: ['"\\u00e9t\\u00e9"'],
    // A surrogate pair spelled as two escapes is one code point; counted strings leave that spelling out.
    reject: ['"\\ud83d\\ude00\\ud83d\\ude00"'],
  },
  {
    name: "an anchored pattern",
    schema: { type: "string", pattern: "^[a-z]+-\\d{2,3}$" },
    valid: ["ab-12", "x-999"],
    invalid: ["ab-1", "AB-12", "ab-1234", "ab-12 "],
  },
  {
    name: "an unanchored pattern matches anywhere",
    schema: { type: "string", pattern: "cat" },
    valid: ["cat", "concatenate", 'a"cat"b', "\ncat\n"],
    invalid: ["dog", "ca t", ""],
  },
  {
    name: "a pattern with characters JSON escapes",
    schema: { type: "string", pattern: '^a"b\\\\c\\n.[^a]$' },
    valid: ['a"b\\c\nx"', 'a"b\\c\n\\\t'],
    invalid: ['a"b\\c\n\na', 'a"bc\nxy', 'a"b\\c\nxa'],
  },
  {
    name: "format: date (real month lengths and leap years)",
    schema: { type: "string", format: "date" },
    valid: ["2024-02-29", "2023-12-31", "2000-02-29", "1999-04-30"],
    invalid: ["2023-02-29", "1900-02-29", "2023-13-01", "2023-04-31", "2023-1-01", "2023-00-10"],
  },
  {
    name: "format: date-time and time (with a zone, as RFC 3339 requires)",
    schema: {
      type: "array",
      prefixItems: [
        { type: "string", format: "date-time" },
        { type: "string", format: "time" },
      ],
      items: false,
    },
    valid: [
      ["2024-01-02T03:04:05Z", "12:30:00Z"],
      ["2024-01-02T23:59:59.123+05:30", "00:00:00.5-11:00"],
    ],
    invalid: [["2024-01-02T24:00:00Z"], ["2024-01-02T03:04:05"], ["2024-01-02T03:04:05Z", "12:30Z"]],
    // ajv also takes a space or a lowercase t and z; the grammar writes the RFC's upper-case form.
    reject: ['["2024-01-02 03:04:05Z"]'],
  },
  {
    name: "formats: uuid, email, hostname, duration",
    schema: {
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        mail: { type: "string", format: "email" },
        host: { type: "string", format: "hostname" },
        span: { type: "string", format: "duration" },
      },
      additionalProperties: false,
    },
    valid: [
      {
        id: "123e4567-e89b-12d3-a456-426614174000",
        mail: "a.b+c@example.co.uk",
        host: "example.com",
        span: "P1Y2M3D",
      },
      { id: "123E4567-E89B-12D3-A456-426614174000", mail: "x@y.io", host: "localhost", span: "PT4H5M6S" },
      { host: "a-b.c.", span: "P1W" },
      { span: "P1DT2H" },
    ],
    invalid: [
      { id: "123e4567e89b12d3a456426614174000" },
      { mail: "a@b" },
      { mail: "a..b@example.com" },
      { mail: "@example.com" },
      { host: "-a.com" },
      { host: "a_b.com" },
      { host: "a..b" },
      { span: "P" },
      { span: "PT" },
      { span: "P1YT" },
      { span: "1Y" },
    ],
  },
  {
    name: "formats: ipv4 and ipv6",
    schema: {
      type: "array",
      items: {
        anyOf: [
          { type: "string", format: "ipv4" },
          {
            type: "object",
            properties: { v6: { type: "string", format: "ipv6" } },
            required: ["v6"],
            additionalProperties: false,
          },
        ],
      },
    },
    valid: [
      ["192.168.0.1", "0.0.0.0", "255.255.255.255"],
      [
        "::",
        "::1",
        "2001:db8::ff00:42:8329",
        "fe80::1:2:3:4",
        "1:2:3:4:5:6:7:8",
        "::ffff:192.0.2.128",
        "1::",
        "1:2:3:4:5:6:7::",
      ].map((v6) => ({ v6 })),
    ],
    invalid: [
      ["256.1.1.1"],
      ["01.1.1.1"],
      ["1.1.1"],
      ...["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", ":1", "1:2:3:4:5:6:7"].map((v6) => [{ v6 }]),
    ],
  },
  {
    name: "integer bounds, inclusive and exclusive",
    schema: {
      type: "array",
      prefixItems: [
        { type: "integer", minimum: -15, maximum: 1234 },
        { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 10 },
        { type: "integer", format: "int32" },
      ],
      items: false,
    },
    valid: [
      [-15, 1, -2147483648],
      [1234, 9, 2147483647],
      [0, 5, 0],
    ],
    invalid: [[-16], [1235], [0, 0], [0, 10], [0, 1, 2147483648], [0, 1, -2147483649]],
  },
  {
    name: "number bounds",
    schema: {
      type: "array",
      prefixItems: [
        { type: "number", minimum: -1.5, exclusiveMaximum: 2.25 },
        { type: "number", exclusiveMinimum: 0 },
      ],
      items: false,
    },
    valid: [
      [-1.5, 0.001],
      [-1.49, 5],
      [0, 123456.75],
      [2.24999, 0.000001],
      [2.2, 7],
    ],
    invalid: [[-1.51], [2.25], [3], [-2], [0, 0], [0, -0.1]],
    reject: ["[2.250]", "[0,0.0]", "[1e0]", "[0,1e-7]"],
  },
  {
    name: "any JSON value for true and for an empty schema",
    schema: { type: "array", prefixItems: [true, {}], items: false },
    valid: [[], [null], [{ a: [1, "x", { b: false }] }, 1.5e3], ["s", []]],
    invalid: [[1, 2, 3]],
  },
];

describe("compileJsonSchema: the grammar accepts exactly the valid documents", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const { gbnf } = compileJsonSchema(c.schema, { strict: c.strict ?? false });
      const matcher = await gbnfMatcher(gbnf);
      const valid = schemaValidator(c.schema as object, c.draft);
      const describe = (text: string) => `${text}\n--- grammar ---\n${gbnf}`;
      for (const value of c.valid) {
        expect(valid(value), `ajv takes ${JSON.stringify(value)}`).toBe(true);
        for (const text of [JSON.stringify(value), JSON.stringify(value, null, 2)]) {
          expect(matcher.accepts(text), describe(`accepts ${text}`)).toBe(true);
        }
      }
      for (const value of c.invalid) {
        expect(valid(value), `ajv refuses ${JSON.stringify(value)}`).toBe(false);
        for (const text of [JSON.stringify(value), JSON.stringify(value, null, 2)]) {
          expect(matcher.accepts(text), describe(`rejects ${text}`)).toBe(false);
        }
      }
      for (const text of c.accept ?? []) {
        expect(valid(JSON.parse(text)), `ajv takes ${text}`).toBe(true);
        expect(matcher.accepts(text), describe(`accepts ${text}`)).toBe(true);
      }
      for (const text of c.reject ?? [])
        expect(matcher.accepts(text), describe(`rejects ${text}`)).toBe(false);
    });
  }
});

describe("fixed grammars", () => {
  it("JSON_OBJECT_GBNF accepts any JSON object and nothing else", async () => {
    const matcher = await gbnfMatcher(JSON_OBJECT_GBNF);
    for (const value of [{}, { a: 1 }, { a: { b: [1, "x", null, true, { c: -1.5e-3 }] }, "": "" }]) {
      expect(matcher.accepts(JSON.stringify(value))).toBe(true);
      expect(matcher.accepts(JSON.stringify(value, null, 2))).toBe(true);
    }
    for (const text of ["[]", '"x"', "1", "null", '{"a":1,}', "{'a':1}", '{"a":1} ']) {
      expect(matcher.accepts(text), text).toBe(false);
    }
  });

  it("JSON_VALUE_GBNF accepts any JSON value", async () => {
    const matcher = await gbnfMatcher(JSON_VALUE_GBNF);
    for (const text of ["[]", '"x"', "-0.5e+10", "null", "true", '{"a":[1,{}]}'])
      expect(matcher.accepts(text), text).toBe(true);
    for (const text of ["", "01", "[1,]", "nul", "1e999"]) expect(matcher.accepts(text), text).toBe(false);
  });
});

describe("compileJsonSchema: the API", () => {
  it("returns the cached object for the same schema text", () => {
    const schema = { type: "object", properties: { cached: { type: "string" } } };
    const first = compileJsonSchema(schema);
    expect(compileJsonSchema(JSON.parse(JSON.stringify(schema)))).toBe(first);
    expect(compileJsonSchema(schema, { strict: true })).not.toBe(first);
    expect(compiledGrammarCacheSize()).toBeGreaterThan(0);
    expect(Object.isFrozen(first)).toBe(true);
  });

  it("keeps at most 256 grammars", () => {
    for (let i = 0; i < 300; i++) compileJsonSchema({ type: "integer", minimum: i });
    expect(compiledGrammarCacheSize()).toBeLessThanOrEqual(256);
  });

  it("ignores descriptive keywords", () => {
    const plain = compileJsonSchema({
      type: "object",
      properties: { a: { type: "string" } },
      required: ["a"],
    });
    const described = compileJsonSchema({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "https://example.com/x",
      title: "T",
      description: "D",
      $comment: "C",
      type: "object",
      properties: {
        a: {
          type: "string",
          examples: ["x"],
          default: "x",
          deprecated: true,
          readOnly: true,
          writeOnly: false,
          "x-extra": 1,
        },
      },
      required: ["a"],
    });
    expect(described.gbnf).toBe(plain.gbnf);
  });

  it("compiles a realistic 10-field nested schema well under 5 ms (printed, not asserted)", async () => {
    const schema = (salt: number) => ({
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string", minLength: 1, maxLength: 80 },
        email: { type: "string", format: "email" },
        age: { type: "integer", minimum: 0, maximum: 150 },
        score: { type: "number", minimum: 0, maximum: 100 },
        status: { enum: ["active", "inactive", "banned", `salt-${salt}`] },
        created: { type: "string", format: "date-time" },
        tags: { type: "array", items: { type: "string", pattern: "^[a-z][a-z0-9-]*$" }, maxItems: 10 },
        address: {
          type: "object",
          properties: {
            street: { type: "string" },
            city: { type: "string" },
            zip: { type: "string", pattern: "^\\d{5}$" },
          },
          required: ["street", "city", "zip"],
          additionalProperties: false,
        },
        manager: {
          anyOf: [
            { type: "null" },
            {
              type: "object",
              properties: { id: { type: "string" } },
              required: ["id"],
              additionalProperties: false,
            },
          ],
        },
      },
      required: ["id", "name", "email", "age", "score", "status", "created", "tags", "address", "manager"],
      additionalProperties: false,
    });
    compileJsonSchema(schema(-1)); // warm the JIT
    const runs = 50;
    const started = performance.now();
    for (let i = 0; i < runs; i++) compileJsonSchema(schema(i)); // distinct texts: no cache hits
    const perSchema = (performance.now() - started) / runs;
    const cachedStart = performance.now();
    for (let i = 0; i < runs; i++) compileJsonSchema(schema(i));
    const perHit = (performance.now() - cachedStart) / runs;
    console.log(
      `10-field nested schema: ${perSchema.toFixed(3)} ms per compile, ${perHit.toFixed(4)} ms per cache hit`,
    );
    const { gbnf } = compileJsonSchema(schema(0));
    await gbnfMatcher(gbnf);
  });
});
