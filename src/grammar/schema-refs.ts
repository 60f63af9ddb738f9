/**
 * Local `$ref`s: `#` and JSON pointers into the same document (`#/$defs/node`,
 * `#/definitions/node`, `#/properties/a/items`). Remote documents and `$anchor` names are refused:
 * a compiler that fetched URLs named by a request would be a way into our network.
 */
import { invalidSchema, type SchemaPath, unsupported } from "./schema-errors.js";

/** A subschema and where it sits in the document (for error params). */
export interface Located {
  readonly schema: unknown;
  readonly path: SchemaPath;
}

export interface ResolvedRef extends Located {
  /** The target's path as text: one rule per target, however the $ref spelled it. */
  readonly key: string;
}

export function resolveRef(root: unknown, ref: unknown, at: SchemaPath): ResolvedRef {
  if (typeof ref !== "string") throw invalidSchema(at, "$ref must be a string");
  if (!ref.startsWith("#")) {
    throw unsupported(at, "$ref to another document is not supported (only local refs such as #/$defs/name)");
  }
  const fragment = safeDecode(ref.slice(1), at);
  if (fragment !== "" && !fragment.startsWith("/")) {
    throw unsupported(
      at,
      "$ref to an $anchor name is not supported (use a JSON pointer such as #/$defs/name)",
    );
  }
  let node = root;
  const path: (string | number)[] = [];
  for (const raw of fragment === "" ? [] : fragment.slice(1).split("/")) {
    const segment = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(node) && /^(0|[1-9]\d*)$/.test(segment) && Number(segment) < node.length) {
      node = node[Number(segment)];
      path.push(Number(segment));
    } else if (isPlainObject(node) && Object.hasOwn(node, segment)) {
      node = node[segment];
      path.push(segment);
    } else {
      throw invalidSchema(at, "$ref points to nothing in this schema");
    }
  }
  return { schema: node, path, key: JSON.stringify(path) };
}

function safeDecode(text: string, at: SchemaPath): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidSchema(at, "$ref is not a valid URI fragment");
  }
}

export function isPlainObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
