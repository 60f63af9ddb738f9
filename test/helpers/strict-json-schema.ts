import type { ErrorObject } from "ajv";

/**
 * Tools that hold a JSON body to a published schema strictly and say plainly where it strays:
 * used by the mock upstreams, which check every request Switchboard sends them.
 */

type Schema = Record<string, unknown>;

const isSchema = (value: unknown): value is Schema =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Keywords whose value is one subschema. */
const SINGLE = [
  "additionalProperties",
  "unevaluatedProperties",
  "items",
  "unevaluatedItems",
  "contains",
  "not",
  "if",
  "then",
  "else",
  "propertyNames",
] as const;
/** Keywords whose value is a list of subschemas. */
const LISTS = ["allOf", "anyOf", "oneOf", "prefixItems"] as const;
/** Keywords whose value maps names to subschemas. */
const MAPS = ["properties", "patternProperties", "definitions", "$defs", "dependentSchemas"] as const;

/** A copy of `node` with `child` applied to each direct subschema (`role` says where it sits). */
function mapChildren(node: Schema, child: (sub: unknown, role: string) => unknown): Schema {
  const out: Schema = { ...node };
  for (const key of SINGLE) if (isSchema(node[key])) out[key] = child(node[key], key);
  for (const key of LISTS) {
    const list = node[key];
    if (Array.isArray(list)) out[key] = list.map((sub) => child(sub, key));
  }
  // Tuple `items: [...]` (draft 7).
  if (Array.isArray(node.items)) out.items = node.items.map((sub) => child(sub, "prefixItems"));
  for (const key of MAPS) {
    const map = node[key];
    if (isSchema(map)) {
      out[key] = Object.fromEntries(Object.entries(map).map(([name, sub]) => [name, child(sub, key)]));
    }
  }
  return out;
}

const declaresProperties = (node: Schema) =>
  "properties" in node || "patternProperties" in node || "allOf" in node;

/**
 * Closes every object schema that lists its properties: `unevaluatedProperties: false` wherever
 * neither `additionalProperties` nor `unevaluatedProperties` says otherwise, so a property the
 * schema does not define fails (the OpenAPI spec, like most, leaves objects open by default).
 * `unevaluatedProperties` (2019-09 and later) sees the properties that `allOf`, `$ref` and the
 * matching `anyOf` / `oneOf` branch define, so the whole is closed, never a part of it: a schema
 * that is a piece of a larger one (an `allOf` member, a branch beside properties of its parent,
 * a `$ref` beside them) stays open, and so does every component used as such a piece anywhere.
 */
export function closeObjectSchemas(
  components: Readonly<Record<string, unknown>>,
  refPrefix: string,
): Record<string, unknown> {
  const pieces = new Set<string>();
  const componentOf = (ref: unknown) =>
    typeof ref === "string" && ref.startsWith(refPrefix) ? ref.slice(refPrefix.length) : undefined;

  const close = (value: unknown, isPiece: boolean): unknown => {
    if (!isSchema(value)) return value;
    const ownProperties = declaresProperties(value);
    const branchesArePieces =
      isPiece || ownProperties || "$ref" in value || ("anyOf" in value && "oneOf" in value);
    const target = componentOf(value.$ref);
    if (target !== undefined && (isPiece || ownProperties)) pieces.add(target);
    const out = mapChildren(value, (sub, role) => {
      if (role === "allOf" || role === "then" || role === "else") return close(sub, true);
      if (role === "anyOf" || role === "oneOf") return close(sub, branchesArePieces);
      return close(sub, false);
    });
    if (
      !isPiece &&
      ownProperties &&
      value.additionalProperties === undefined &&
      value.unevaluatedProperties === undefined
    ) {
      out.unevaluatedProperties = false;
    }
    return out;
  };

  // A component found to be a piece makes what it refers to pieces too: go on until none is new.
  let closed: [string, unknown][] = [];
  let known = -1;
  while (known !== pieces.size) {
    known = pieces.size;
    closed = Object.entries(components).map(([name, schema]) => [name, close(schema, pieces.has(name))]);
  }
  return Object.fromEntries(closed);
}

/**
 * Turns each union of objects told apart by one property (`type` or `role`: every branch requires
 * it, as a const or enum of strings no other branch has) into a `oneOf` with ajv's `discriminator`
 * (ajv option `discriminator: true`), after removing OpenAPI's own `discriminator`s, which ajv
 * cannot always take. The answer is the same; the errors are not: only the branch the body names
 * is checked, so a stray property in a content block is reported as that, not as one failure per
 * branch. `resolve` looks up a `$ref` (one hop, as ajv does).
 */
export function tagDiscriminatedUnions(
  value: unknown,
  resolve: (ref: string) => Schema | undefined,
): unknown {
  if (!isSchema(value)) return value;
  const { discriminator: _openApi, ...rest } = value;
  const out = mapChildren(rest, (sub) => tagDiscriminatedUnions(sub, resolve));
  const key =
    "anyOf" in out && !("oneOf" in out) ? "anyOf" : "oneOf" in out && !("anyOf" in out) ? "oneOf" : "";
  const branches = key ? out[key] : undefined;
  if (!Array.isArray(branches) || branches.length < 2) return out;
  if (out.type !== undefined && out.type !== "object") return out;
  for (const tag of ["type", "role"]) {
    if (!isTaggedBy(branches, tag, out, resolve)) continue;
    delete out[key];
    return { ...out, type: "object", oneOf: branches, discriminator: { propertyName: tag } };
  }
  return out;
}

function isTaggedBy(
  branches: unknown[],
  tag: string,
  parent: Schema,
  resolve: (ref: string) => Schema | undefined,
): boolean {
  const seen = new Set<string>();
  const parentRequires = Array.isArray(parent.required) && parent.required.includes(tag);
  for (const branch of branches) {
    if (!isSchema(branch)) return false;
    const schema = typeof branch.$ref === "string" ? resolve(branch.$ref) : branch;
    const property = isSchema(schema?.properties) ? schema.properties[tag] : undefined;
    if (!schema || !isSchema(property)) return false;
    const required = Array.isArray(schema.required) && schema.required.includes(tag);
    if (!required && !parentRequires) return false;
    const values = typeof property.const === "string" ? [property.const] : property.enum;
    if (!Array.isArray(values) || values.length === 0) return false;
    for (const tagValue of values) {
      if (typeof tagValue !== "string" || seen.has(tagValue)) return false;
      seen.add(tagValue);
    }
  }
  return true;
}

/**
 * ajv's errors as lines a person reads: the JSON pointer into the body, then what is wrong there.
 * Summaries ("must match a schema in anyOf") go when something more precise was said, and so do
 * the branches of a union that a value is not even the JSON type of (`content` "must be string")
 * when another branch found something wrong inside it. Deepest first: where a union's branches
 * all fail, the one that got furthest into the value usually names the mistake.
 */
export function describeSchemaErrors(
  errors: readonly ErrorObject[] | null | undefined,
  limit = 12,
): string[] {
  const all = errors ?? [];
  const precise = all.filter(
    (e) =>
      !["anyOf", "oneOf", "if", "allOf"].includes(e.keyword) &&
      !(e.keyword === "type" && all.some((inner) => inner.instancePath.startsWith(`${e.instancePath}/`))),
  );
  const depth = (e: ErrorObject) => e.instancePath.split("/").length;
  const chosen = [...(precise.length > 0 ? precise : all)].sort((a, b) => depth(b) - depth(a));
  const lines = [...new Set(chosen.map(describeError))];
  return lines.length > limit ? [...lines.slice(0, limit), `… and ${lines.length - limit} more`] : lines;
}

function describeError(error: ErrorObject): string {
  const at = error.instancePath || "(the body)";
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties":
      return `${at}: '${String(params.additionalProperty)}' is not a property the schema defines here`;
    case "unevaluatedProperties":
      return `${at}: '${String(params.unevaluatedProperty)}' is not a property the schema defines here`;
    case "enum":
      return `${at}: must be one of ${JSON.stringify(params.allowedValues)}`;
    case "const":
      return `${at}: must be ${JSON.stringify(params.allowedValue)}`;
    default:
      return `${at}: ${error.message ?? error.keyword}`;
  }
}
