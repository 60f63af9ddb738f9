import { z } from "zod";
import { configSchema } from "./schema.js";

/**
 * Strings from outside the YAML structure (environment variables, `${VAR}` substitutions) become
 * values of the type the schema declares at their place, never of the type they look like: a data
 * dir named `2024` stays a string, `parallel: ${PARALLEL}` becomes a number. A string that does not
 * fit is left as it is, so validation refuses it with a message that names the field.
 */

/** The schema under its optional / default / prefault / nullable / pipe wrappers. */
export function unwrapSchema(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    if (
      current instanceof z.ZodDefault ||
      current instanceof z.ZodOptional ||
      current instanceof z.ZodPrefault ||
      current instanceof z.ZodNullable
    )
      current = current.unwrap() as z.ZodType;
    else if (current instanceof z.ZodPipe) current = current.in as z.ZodType;
    else return current;
  }
}

const SCALAR_TYPES: ReadonlySet<string> = new Set(["string", "number", "boolean", "enum", "literal"]);

/** A setting one string can give: string (any format), number, boolean, enum, literal, or a union of those. */
export function isScalarSchema(schema: z.ZodType): boolean {
  const inner = unwrapSchema(schema);
  if (inner instanceof z.ZodUnion)
    return inner.options.every((option) => isScalarSchema(option as z.ZodType));
  return SCALAR_TYPES.has(inner._zod.def.type);
}

/** A list setting of scalars (given in the environment as comma-separated values). */
export function isListSchema(schema: z.ZodType): boolean {
  const inner = unwrapSchema(schema);
  return inner instanceof z.ZodArray && isScalarSchema(inner.element as z.ZodType);
}

/** The schema of the value at `path` in the config (keys and array indexes); undefined where there is none. */
export function schemaAt(
  path: readonly (string | number)[],
  root: z.ZodType = configSchema,
): z.ZodType | undefined {
  let current: z.ZodType | undefined = root;
  for (const step of path) {
    const inner: z.ZodType = unwrapSchema(current);
    if (typeof step === "number") {
      if (!(inner instanceof z.ZodArray)) return undefined;
      current = inner.element as z.ZodType;
    } else {
      if (!(inner instanceof z.ZodObject)) return undefined;
      const shape = inner.shape as Record<string, z.ZodType>;
      current = Object.hasOwn(shape, step) ? shape[step] : undefined;
      if (!current) return undefined;
    }
  }
  return current;
}

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * `value` as the schema's type. Lists are split on commas only when `lists` is set (environment
 * variables): a substitution in the file stays one value, so it cannot change the file's structure.
 */
export function coerceString(schema: z.ZodType, value: string, options: { lists: boolean }): unknown {
  const inner = unwrapSchema(schema);
  if (inner instanceof z.ZodArray) {
    if (!options.lists) return value;
    return splitList(value).map((item) => coerceString(inner.element as z.ZodType, item, options));
  }
  if (inner instanceof z.ZodUnion) {
    // The first option that takes the string as something other than a string (e.g. `20` for
    // gpu_layers: auto | max | number); otherwise it stays a string for the string options.
    for (const option of inner.options) {
      const coerced = coerceString(option as z.ZodType, value, options);
      if (typeof coerced !== "string") return coerced;
    }
    return value;
  }
  if (inner instanceof z.ZodNumber) {
    const text = value.trim();
    return DECIMAL.test(text) ? Number(text) : value;
  }
  if (inner instanceof z.ZodBoolean) {
    const text = value.trim().toLowerCase();
    if (text === "true" || text === "1") return true;
    if (text === "false" || text === "0") return false;
    return value;
  }
  if (inner instanceof z.ZodLiteral) {
    for (const literal of inner.values) {
      if (typeof literal !== "string" && String(literal) === value.trim()) return literal;
    }
    return value;
  }
  return value;
}

function splitList(value: string): string[] {
  return value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}
