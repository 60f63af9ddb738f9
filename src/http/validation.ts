import type { z } from "zod";
import { invalidRequest, type ServiceError } from "../core/errors.js";

/** Parses a request body with a zod schema; the first problem becomes a 400 naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw invalidRequest("The request body must be a JSON object.", null, "invalid_body");
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  throw toInvalidRequest(result.error, body);
}

/**
 * The first zod issue as a 400. `body` (the parsed input) tells a missing field from a wrong one:
 * zod 4 leaves `input` out of issues unless asked, so the issue alone cannot say.
 */
export function toInvalidRequest(error: z.ZodError, body?: unknown): ServiceError {
  const issue = error.issues[0];
  if (!issue) return invalidRequest("Invalid request body.");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const param = formatPath([...issue.path, key]);
    return invalidRequest(`Unrecognized request argument supplied: ${param}`, param, "unknown_parameter");
  }
  const param = formatPath(issue.path);
  if (isMissing(issue, body)) {
    return invalidRequest(`Missing required parameter: '${param}'.`, param, "missing_required_parameter");
  }
  const where = param ? `Invalid value for '${param}': ` : "";
  return invalidRequest(`${where}${issue.message}`, param || null, "invalid_value");
}

function isMissing(issue: z.core.$ZodIssue, body: unknown): boolean {
  if (issue.code !== "invalid_type" && issue.code !== "invalid_union") return false;
  if (body !== undefined) return valueAt(body, issue.path) === undefined;
  return issue.code === "invalid_type" && / received undefined$/.test(issue.message);
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let at = value;
  for (const key of path) {
    if (at === null || typeof at !== "object") return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

/** messages[0].content style, as clients print it. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}
