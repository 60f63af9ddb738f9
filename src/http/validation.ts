import type { z } from "zod";
import { type ApiError, invalidRequest } from "./errors.js";

/** Parses a request body with a zod schema; the first problem becomes a 400 naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw invalidRequest("The request body must be a JSON object.", null, "invalid_body");
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  throw toApiError(result.error);
}

export function toApiError(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  if (!issue) return invalidRequest("Invalid request body.");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const param = formatPath([...issue.path, key]);
    return invalidRequest(`Unrecognized request argument supplied: ${param}`, param, "unknown_parameter");
  }
  const param = formatPath(issue.path);
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return invalidRequest(`Missing required parameter: '${param}'.`, param, "missing_required_parameter");
  }
  const where = param ? `Invalid value for '${param}': ` : "";
  return invalidRequest(`${where}${issue.message}`, param || null, "invalid_value");
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
