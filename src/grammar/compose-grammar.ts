/**
 * Grammars built from parts: literal text, JSON values (any, or valid against a schema), free text
 * up to a marker, sequences, choices and repetitions. Tool calls are literal wrappers (a format's
 * tags) around JSON Schema values, so a backend describes the shape it needs as a GrammarNode and
 * gets one GBNF text back, with every schema compiled into the same grammar, checked and bounded
 * as compileJsonSchema checks and bounds a single schema.
 */
import { ServiceError } from "../core/errors.js";
import type { JsonSchema } from "../core/messages.js";
import { CharSet } from "./char-set.js";
import { GbnfBuilder, GrammarBuildError } from "./gbnf-builder.js";
import { alt, charIn, type Expr, lit, rep, seq } from "./gbnf-expr.js";
import { JsonRules } from "./json-rules.js";
import { checkSchemaDocument, schemaFailure } from "./json-schema-gbnf.js";
import { SchemaEmitter } from "./schema-emitter.js";
import { SchemaReader } from "./schema-reader.js";

export type GrammarNode =
  | { kind: "literal"; text: string }
  /** A JSON value valid against `schema`; errors name `param` (`tools[2].function.parameters`). */
  | { kind: "schema"; schema: JsonSchema | boolean; strict: boolean; param: string }
  | { kind: "json-object" }
  | { kind: "json-value" }
  /** JSON's bounded whitespace between tokens. */
  | { kind: "ws" }
  /** Any text that does not contain `end`, then `end` itself. */
  | { kind: "text-until"; end: string }
  | { kind: "seq"; items: readonly GrammarNode[] }
  | { kind: "alt"; options: readonly GrammarNode[] }
  | { kind: "repeat"; item: GrammarNode; min: number; max: number | null };

export const literal = (text: string): GrammarNode => ({ kind: "literal", text });
export const sequence = (...items: GrammarNode[]): GrammarNode => ({ kind: "seq", items });
export const oneOf = (...options: GrammarNode[]): GrammarNode => ({ kind: "alt", options });
export const repeat = (item: GrammarNode, min: number, max: number | null): GrammarNode => ({
  kind: "repeat",
  item,
  min,
  max,
});

const CACHE_ENTRIES = 128;
const CACHE_MAX_KEY_CHARS = 512 * 1024;
const cache = new Map<string, string>();

/**
 * The GBNF text whose language is `root`'s. Cached by the node's JSON text (identical tool lists
 * compile once). Refusals are ServiceErrors naming the offending schema keyword.
 */
export function composeGrammar(root: GrammarNode): string {
  const key = JSON.stringify(root);
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const gbnf = composeUncached(root);
  if (key.length <= CACHE_MAX_KEY_CHARS) {
    cache.set(key, gbnf);
    if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  }
  return gbnf;
}

function composeUncached(root: GrammarNode): string {
  const builder = new GbnfBuilder();
  const rules = new JsonRules(builder);
  let param: string | undefined;
  const emit = (node: GrammarNode): Expr => {
    switch (node.kind) {
      case "literal":
        return lit(node.text);
      case "ws":
        return rules.ws();
      case "json-object":
        return rules.object();
      case "json-value":
        return rules.value();
      case "schema": {
        param = node.param;
        checkSchemaDocument(node.schema, node.param);
        const reader = new SchemaReader(node.schema, node.strict);
        const expr = new SchemaEmitter(node.schema, reader, rules).emitRoot();
        param = undefined;
        return expr;
      }
      case "text-until":
        return textUntil(builder, node.end);
      case "seq":
        return seq(...node.items.map(emit));
      case "alt":
        return alt(...node.options.map(emit));
      case "repeat":
        return builder.repeat("item", emit(node.item), node.min, node.max);
    }
  };
  try {
    return builder.build(emit(root));
  } catch (e) {
    if (e instanceof ServiceError) throw e;
    if (e instanceof GrammarBuildError && param === undefined && e.reason === "too_large") {
      throw new ServiceError("invalid_request", `The output grammar is too large: ${e.message}.`, {
        param: null,
        code: "invalid_schema",
      });
    }
    throw schemaFailure(e, param);
  }
}

/**
 * Text free of `end`, then `end`. Exact when the first character of `end` occurs nowhere else in
 * it (true of markers such as `</think>`): a run of that character may be followed by any
 * character that does not continue the marker.
 */
function textUntil(builder: GbnfBuilder, end: string): Expr {
  const chars = [...end];
  const first = chars[0] as string;
  if (chars.slice(1).includes(first)) throw new Error(`text-until: '${end}' repeats its first character`);
  const firstCode = first.codePointAt(0) as number;
  const any = CharSet.range(1, 0x10ffff).minus(CharSet.range(0xd800, 0xdfff));
  const starts = builder.rule("marker-start", rep(lit(first), 1, null));
  const options: Expr[] = [charIn(any.minus(CharSet.of(firstCode)))];
  for (let i = 1; i < chars.length; i++) {
    const next = chars[i]?.codePointAt(0) as number;
    const other = any.minus(CharSet.of(next, firstCode));
    options.push(seq(starts, lit(chars.slice(1, i).join("")), charIn(other)));
  }
  const body = builder.rule("free-text", rep(builder.rule("free-char", alt(...options)), 0, null));
  return seq(body, starts, lit(chars.slice(1).join("")));
}
