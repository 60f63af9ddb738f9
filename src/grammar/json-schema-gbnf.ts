/**
 * JSON Schema → GBNF (llama.cpp's grammar format): the grammar whose language is the JSON documents
 * valid against the schema, for structured outputs and tool calls.
 *
 * "Exactly" with two deliberate narrowings, so that a sampler cannot wander: whitespace between
 * tokens is bounded and absent around the document, and each value has the spellings
 * JSON.stringify would write where the schema constrains characters (patterns, enum strings, keys
 * of additional properties). Every document the grammar accepts is valid; every valid value has a
 * spelling the grammar accepts, within the documented limits (number digits, formats).
 *
 * What a grammar cannot enforce is refused, never ignored: a ServiceError (invalid_request) with
 * code `unsupported_schema_keyword` or `invalid_schema` and `param` naming the keyword. Hostile
 * schemas are bounded by size, depth, rule count and expanded grammar size.
 */

import { ServiceError } from "../core/errors.js";
import type { JsonSchema } from "../core/messages.js";
import { GbnfBuilder, GrammarBuildError } from "./gbnf-builder.js";
import { JsonRules } from "./json-rules.js";
import { SchemaEmitter } from "./schema-emitter.js";
import { INVALID_SCHEMA, invalidSchema, paramOf, SchemaError, toServiceError } from "./schema-errors.js";
import { SchemaReader } from "./schema-reader.js";

export { JSON_OBJECT_GBNF, JSON_VALUE_GBNF } from "./json-rules.js";

export interface CompileOptions {
  /** Where the schema sits in the request (`response_format.json_schema.schema`), for errors. */
  param?: string;
  /**
   * OpenAI's strict mode: an object schema that does not mention additionalProperties allows no
   * other keys (as if it said false). Otherwise it allows them, as JSON Schema does.
   */
  strict?: boolean;
}

export interface CompiledGrammar {
  readonly gbnf: string;
}

/** Schemas larger than this (as JSON text) are refused before any work. */
export const MAX_SCHEMA_CHARS = 256 * 1024;
/** Nesting of the schema document itself (objects and arrays), checked before anything else. */
const MAX_DOCUMENT_DEPTH = 64;
/** Values (objects, arrays, scalars) in the schema document; 256 KiB of JSON holds fewer. */
const MAX_DOCUMENT_VALUES = 200_000;

const CACHE_ENTRIES = 256;
/** Larger results are compiled each time rather than held. */
const CACHE_MAX_ENTRY_CHARS = 256 * 1024;
const cache = new Map<string, CompiledGrammar>();

export function compileJsonSchema(
  schema: JsonSchema | boolean,
  options: CompileOptions = {},
): CompiledGrammar {
  const key = cacheKey(schema, options);
  const hit = cache.get(key);
  if (hit) {
    // Least recently used goes first: re-insert to move this one to the back.
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const compiled: CompiledGrammar = Object.freeze({ gbnf: compileUncached(schema, options) });
  if (key.length + compiled.gbnf.length <= CACHE_MAX_ENTRY_CHARS) {
    cache.set(key, compiled);
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  }
  return compiled;
}

/** For tests: how many grammars are held. */
export function compiledGrammarCacheSize(): number {
  return cache.size;
}

function cacheKey(schema: unknown, options: CompileOptions): string {
  try {
    checkDocument(schema);
    // Property order is part of the text on purpose: the grammar writes properties in that order.
    const text = JSON.stringify(schema);
    if (text === undefined) throw invalidSchema([], "the schema must be a JSON object or boolean");
    if (text.length > MAX_SCHEMA_CHARS) {
      throw invalidSchema([], `the schema is larger than ${MAX_SCHEMA_CHARS / 1024} KiB`);
    }
    return `${options.strict ? "strict" : "loose"}:${text}`;
  } catch (e) {
    if (e instanceof SchemaError) throw toServiceError(e, options.param);
    // A cycle in the object graph, a BigInt: not something a JSON request can hold.
    throw toServiceError(invalidSchema([], "the schema is not JSON"), options.param);
  }
}

/**
 * Depth and size of the schema document, walked before anything else. Counting values also stops
 * a JavaScript caller's object graph that shares subtrees (its text would be exponential).
 */
function checkDocument(root: unknown): void {
  let values = 0;
  const walk = (value: unknown, depth: number): void => {
    if (++values > MAX_DOCUMENT_VALUES) throw invalidSchema([], "the schema has too many values");
    if (typeof value !== "object" || value === null) return;
    if (depth >= MAX_DOCUMENT_DEPTH) {
      throw invalidSchema([], `the schema nests more than ${MAX_DOCUMENT_DEPTH} levels`);
    }
    for (const child of Array.isArray(value) ? value : Object.values(value)) walk(child, depth + 1);
  };
  walk(root, 0);
}

function compileUncached(schema: unknown, options: CompileOptions): string {
  try {
    const builder = new GbnfBuilder();
    const rules = new JsonRules(builder);
    const reader = new SchemaReader(schema, options.strict === true);
    return builder.build(new SchemaEmitter(schema, reader, rules).emitRoot());
  } catch (e) {
    throw schemaFailure(e, options.param);
  }
}

/** Size and depth of a schema document, checked before compiling it (see checkDocument). */
export function checkSchemaDocument(schema: unknown, param: string | undefined): void {
  cacheKey(schema, { param });
}

/** A failure while compiling a schema, as the ServiceError the caller sees (anything else rethrown). */
export function schemaFailure(e: unknown, param: string | undefined): unknown {
  if (e instanceof SchemaError) return toServiceError(e, param);
  if (e instanceof GrammarBuildError) {
    const message =
      e.reason === "empty"
        ? "Invalid schema: no JSON document satisfies it (or it refers to itself without nesting)."
        : `Invalid schema: ${e.message}.`;
    return new ServiceError("invalid_request", message, { param: paramOf(param, []), code: INVALID_SCHEMA });
  }
  // A stack overflow is a schema shaped to exhaust us, not a bug to show as a 500.
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    return new ServiceError("invalid_request", "Invalid schema: it is too complex to compile.", {
      param: paramOf(param, []),
      code: INVALID_SCHEMA,
    });
  }
  return e;
}
