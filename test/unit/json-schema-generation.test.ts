import { type Llama, LlamaCompletion, type LlamaContext, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { JsonSchema } from "../../src/core/messages.js";
import { compileJsonSchema } from "../../src/grammar/json-schema-gbnf.js";
import { testLlama } from "../helpers/gbnf-matcher.js";
import { schemaValidator } from "../helpers/json-schema-validator.js";

/**
 * End to end: a random-weight model sampling under the compiled grammar produces only documents
 * that parse and validate. A random model is a good adversary — it goes wherever the grammar lets
 * it — and every generation must end because the grammar finished, not because it ran out of
 * tokens. Schemas here bound every string and list, so every document is finite.
 */

const GENERATIONS = 20;
const MAX_TOKENS = 400;

/** [name, schema, strict] */
const schemas: [string, JsonSchema, boolean?][] = [
  [
    "a strict object",
    {
      type: "object",
      properties: {
        name: { type: "string", maxLength: 12 },
        age: { type: "integer", minimum: 0, maximum: 120 },
        active: { type: "boolean" },
      },
      required: ["name", "age", "active"],
      additionalProperties: false,
    },
  ],
  [
    "enum, const and null",
    { anyOf: [{ enum: ["red", "green", 7, { k: [1, 2] }] }, { const: "fixed" }, { type: "null" }] },
  ],
  [
    "nested objects with optional properties",
    {
      type: "object",
      properties: {
        items: {
          type: "array",
          maxItems: 3,
          items: {
            type: "object",
            properties: {
              id: { type: "integer", minimum: 1, maximum: 999 },
              note: { type: "string", maxLength: 6 },
            },
            required: ["id"],
            additionalProperties: false,
          },
        },
        done: { type: "boolean" },
      },
      required: ["items"],
      additionalProperties: false,
    },
  ],
  [
    "a tuple of formats",
    {
      type: "array",
      prefixItems: [
        { type: "string", format: "date" },
        { type: "string", format: "uuid" },
        { type: "string", format: "date-time" },
        { type: "string", format: "ipv4" },
        { type: "string", format: "ipv6" },
        { type: "string", format: "duration" },
      ],
      items: false,
      minItems: 6,
    },
  ],
  [
    "anchored patterns",
    {
      type: "object",
      properties: {
        code: { type: "string", pattern: "^[A-Z]{2}-\\d{3}$" },
        slug: { type: "string", pattern: "^[a-z](-?[a-z0-9]){0,8}$" },
        quoted: { type: "string", pattern: '^"[^"\\\\]{0,4}"\\\\$' },
      },
      required: ["code", "slug", "quoted"],
      additionalProperties: false,
    },
  ],
  [
    "number and integer bounds",
    {
      type: "array",
      prefixItems: [
        { type: "number", exclusiveMinimum: 0, maximum: 1 },
        { type: "integer", minimum: -50, exclusiveMaximum: 50 },
        { type: "number", minimum: -2.5, maximum: 1234.75 },
        { type: "integer", format: "int32" },
      ],
      items: false,
      minItems: 4,
    },
  ],
  [
    "a recursive list through $defs",
    {
      $defs: {
        node: {
          type: "object",
          properties: {
            v: { enum: [1, 2, 3] },
            next: { anyOf: [{ $ref: "#/$defs/node" }, { type: "null" }] },
          },
          required: ["v", "next"],
          additionalProperties: false,
        },
      },
      $ref: "#/$defs/node",
    },
  ],
  [
    "allOf merged objects, strict (no other keys)",
    {
      allOf: [
        { type: "object", properties: { a: { type: "string", maxLength: 4 } }, required: ["a"] },
        { type: "object", properties: { b: { enum: [true, null] }, c: { const: 0 } }, required: ["b"] },
      ],
    },
    true,
  ],
  [
    "type arrays",
    { type: "array", items: { type: ["integer", "null", "boolean"], maximum: 99, minimum: -9 }, maxItems: 4 },
  ],
  [
    "lengths in code points",
    { type: "array", items: { type: "string", minLength: 3, maxLength: 8 }, minItems: 1, maxItems: 2 },
  ],
  [
    "minItems and maxItems of enums",
    { type: "array", items: { enum: ["x", "y", "z"] }, minItems: 2, maxItems: 5 },
  ],
  [
    "draft 7 definitions and additionalItems",
    {
      definitions: { small: { type: "integer", minimum: 0, maximum: 9 } },
      type: "array",
      prefixItems: [{ $ref: "#/definitions/small" }, { type: "string", maxLength: 3 }],
      items: { $ref: "#/definitions/small" },
      maxItems: 4,
    },
  ],
];

describe("a random model under the grammar writes only valid documents", () => {
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;

  beforeAll(async () => {
    llama = await testLlama();
    model = await llama.loadModel({ modelPath: inject("tinyModelPath") });
    context = await model.createContext({ sequences: 1, threads: 1, contextSize: 1024 });
  });

  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
  });

  for (const [name, schema, strict] of schemas) {
    it(`${name}: ${GENERATIONS} generations`, async () => {
      const { gbnf } = compileJsonSchema(schema, { strict });
      const grammar = await llama.createGrammar({ grammar: gbnf });
      const valid = schemaValidator(schema);
      const sequence = context.getSequence();
      const completion = new LlamaCompletion({ contextSequence: sequence });
      try {
        for (let seed = 1; seed <= GENERATIONS; seed++) {
          await sequence.clearHistory();
          const { response, metadata } = await completion.generateCompletionWithMeta("Answer in JSON:\n", {
            grammar,
            maxTokens: MAX_TOKENS,
            temperature: 1,
            topK: 0,
            topP: 1,
            seed,
          });
          const where = `seed ${seed}: ${JSON.stringify(response)}\n${gbnf}`;
          expect(metadata.stopReason, where).toBe("eogToken");
          let value: unknown;
          expect(() => {
            value = JSON.parse(response);
          }, where).not.toThrow();
          expect(valid(value), where).toBe(true);
        }
      } finally {
        sequence.dispose();
      }
    });
  }
});
