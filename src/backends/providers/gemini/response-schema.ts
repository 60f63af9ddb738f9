import { clip, ServiceError } from "../../../core/errors.js";
import type { JsonSchema } from "../../../core/messages.js";

/**
 * JSON Schema → Gemini's Schema object (a subset of OpenAPI 3.0). What maps is translated
 * (`type: ["string", "null"]` → `nullable`, `const` → a one-value `enum`); what Gemini has no field
 * for is refused with a 400 naming the keyword and where it sits, never silently dropped — except
 * `additionalProperties: false`, which Gemini's output already keeps to (it writes the declared
 * properties only), and annotations that change nothing ($schema, $id, $comment).
 */

/** Keywords Gemini takes as they are. */
const KEPT = new Set([
  "description",
  "title",
  "format",
  "pattern",
  "minimum",
  "maximum",
  "nullable",
  "default",
  "example",
  "propertyOrdering",
]);

/**
 * Counts and lengths, which Gemini's Schema types as int64: in the JSON of its REST API (and
 * @google/genai's types) a decimal string.
 */
const INT64 = new Set(["minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"]);

const IGNORED = new Set(["$schema", "$id", "$comment"]);

const TYPES = new Set(["string", "number", "integer", "boolean", "array", "object"]);

type Path = readonly (string | number)[];

export function toGeminiSchema(schema: JsonSchema, param: string): Record<string, unknown> {
  return convert(schema, [], param);
}

function convert(schema: unknown, path: Path, param: string): Record<string, unknown> {
  if (!schema || typeof schema !== "object" || Array.isArray(schema)) {
    throw refusal(param, path, "a schema must be an object here");
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    const at = [...path, key];
    if (IGNORED.has(key)) continue;
    if (KEPT.has(key)) {
      out[key] = value;
      continue;
    }
    if (INT64.has(key)) {
      if (!Number.isSafeInteger(value) || (value as number) < 0) {
        throw refusal(param, at, `${key} must be a non-negative integer`);
      }
      out[key] = String(value);
      continue;
    }
    switch (key) {
      case "type":
        Object.assign(out, convertType(value, at, param));
        break;
      case "properties": {
        const properties: Record<string, unknown> = {};
        for (const [name, sub] of Object.entries(objectOf(value, at, param))) {
          properties[name] = convert(sub, [...at, name], param);
        }
        out.properties = properties;
        break;
      }
      case "required":
        out.required = value;
        break;
      case "items":
        if (Array.isArray(value)) throw refusal(param, at, "tuple items are not supported by this model");
        out.items = convert(value, at, param);
        break;
      case "anyOf":
        if (!Array.isArray(value)) throw refusal(param, at, "anyOf must be an array");
        out.anyOf = value.map((sub, i) => convert(sub, [...at, i], param));
        break;
      case "enum":
        if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
          throw refusal(param, at, "this model takes enums of strings only");
        }
        out.enum = value;
        break;
      case "const":
        if (typeof value !== "string")
          throw refusal(param, at, "this model takes a const that is a string only");
        out.enum = [value];
        break;
      case "additionalProperties":
        if (value !== false) {
          throw refusal(param, at, "this model's schemas cannot allow properties beyond those listed");
        }
        break;
      default:
        throw refusal(param, at, `'${clip(key, 64)}' is not supported by this model's schemas`);
    }
  }
  return out;
}

function convertType(value: unknown, at: Path, param: string): Record<string, unknown> {
  const types = Array.isArray(value) ? value : [value];
  const nullable = types.includes("null");
  const rest = types.filter((t) => t !== "null");
  if (rest.length !== 1 || typeof rest[0] !== "string" || !TYPES.has(rest[0])) {
    throw refusal(param, at, "this model takes one type per schema (optionally with null)");
  }
  return { type: rest[0].toUpperCase(), ...(nullable && { nullable: true }) };
}

function objectOf(value: unknown, at: Path, param: string): Record<string, unknown> {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw refusal(param, at, "properties must be an object");
  }
  return value as Record<string, unknown>;
}

function refusal(param: string, path: Path, message: string): ServiceError {
  const where = `${param}${pathText(path)}`;
  return new ServiceError("invalid_request", `Invalid schema at ${where}: ${message}.`, {
    param: where,
    code: "unsupported_schema_keyword",
  });
}

function pathText(path: Path): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(clip(segment, 64))}]`;
  }
  return out;
}
