/**
 * Refusals of a schema, each naming where in the request the offending keyword is: the caller's
 * `param` prefix (`response_format.json_schema.schema`) plus the JSON path inside the schema
 * (`.properties.tags.uniqueItems`, `.anyOf[1].pattern`).
 */
import { clip, ServiceError } from "../core/errors.js";

/** Where a keyword or subschema sits in the schema document. */
export type SchemaPath = readonly (string | number)[];

/** The schema could be valid JSON Schema, but a grammar cannot enforce this keyword. */
export const UNSUPPORTED_KEYWORD = "unsupported_schema_keyword";
/** The schema is malformed, unsatisfiable, or too large to compile. */
export const INVALID_SCHEMA = "invalid_schema";

/** Thrown inside the compiler; `compileJsonSchema` turns it into a ServiceError with the prefix. */
export class SchemaError extends Error {
  override readonly name = "SchemaError";
  constructor(
    readonly code: typeof UNSUPPORTED_KEYWORD | typeof INVALID_SCHEMA,
    readonly path: SchemaPath,
    message: string,
  ) {
    super(message);
  }
}

export const unsupported = (path: SchemaPath, message: string) =>
  new SchemaError(UNSUPPORTED_KEYWORD, path, message);
export const invalidSchema = (path: SchemaPath, message: string) =>
  new SchemaError(INVALID_SCHEMA, path, message);

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** `prefix.properties.tags[0]`; property names that are not identifiers are quoted in brackets. */
export function paramOf(prefix: string | undefined, path: SchemaPath): string | null {
  let out = prefix ?? "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(clip(segment, 64))}]`;
  }
  return out === "" ? null : out;
}

/** The message names the location in the schema too, so it reads well without the param. */
export function toServiceError(error: SchemaError, prefix: string | undefined): ServiceError {
  const param = paramOf(prefix, error.path);
  const where = paramOf("schema", error.path) ?? "schema";
  return new ServiceError("invalid_request", `Invalid schema at ${where}: ${error.message}.`, {
    param,
    code: error.code,
  });
}
