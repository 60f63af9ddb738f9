/**
 * Errors in the terms of the service, not of a transport. Everything below the HTTP edge throws
 * these; the edge (`http/errors.ts`) is the one place that turns them into the OpenAI error
 * envelope, and a batch or assistants run records them the same way.
 */

/** What went wrong. Each kind has one status code, which usage records and batch results carry. */
export type ErrorKind =
  | "invalid_request"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  /** An unknown model: 404 with the invalid_request_error type, as OpenAI answers. */
  | "unknown_model"
  | "method_not_allowed"
  | "request_timeout"
  | "too_large"
  | "headers_too_large"
  | "rate_limited"
  | "quota_exceeded"
  | "unavailable"
  /** An upstream provider failed or answered with something we could not use. */
  | "bad_gateway"
  /** An upstream provider did not answer in time. */
  | "gateway_timeout"
  /** The upstream reported a conflicting concurrent operation (its 409); worth retrying. */
  | "conflict"
  | "internal";

const STATUS: Readonly<Record<ErrorKind, number>> = {
  invalid_request: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  unknown_model: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  too_large: 413,
  headers_too_large: 431,
  rate_limited: 429,
  quota_exceeded: 429,
  unavailable: 503,
  bad_gateway: 502,
  gateway_timeout: 504,
  conflict: 409,
  internal: 500,
};

/** The status code a kind is reported with (HTTP responses, usage records, batch output lines). */
export function statusOf(kind: ErrorKind): number {
  return STATUS[kind];
}

export interface ServiceErrorOptions {
  code?: string | null;
  param?: string | null;
  /**
   * What the client should know besides the message: retry-after, x-ratelimit-* and the like,
   * sent as response headers at the HTTP edge.
   */
  hints?: Readonly<Record<string, string>>;
  cause?: unknown;
}

/**
 * A failure the caller may see. Its message is written for clients: it never holds a path, a
 * stack, a key or caller text longer than a short quote.
 */
export class ServiceError extends Error {
  override readonly name = "ServiceError";
  readonly code: string | null;
  readonly param: string | null;
  readonly hints: Readonly<Record<string, string>>;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    options: ServiceErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? null;
    this.param = options.param ?? null;
    this.hints = options.hints ?? {};
  }

  get status(): number {
    return statusOf(this.kind);
  }

  /** Whether trying the same request again later may succeed. */
  get retryable(): boolean {
    const said = this.hints["x-should-retry"];
    if (said !== undefined) return said === "true";
    return this.kind === "unavailable" || this.kind === "rate_limited";
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ServiceError("invalid_request", message, { param, code });

export const unsupportedParameter = (param: string, message: string) =>
  new ServiceError("invalid_request", message, { param, code: "unsupported_parameter" });

export const notFound = (message: string, code: string, param: string | null = null) =>
  new ServiceError("not_found", message, { code, param });

export const modelNotFound = (model: string) =>
  new ServiceError(
    "unknown_model",
    `The model '${clip(model)}' does not exist or you do not have access to it.`,
    { code: "model_not_found", param: "model" },
  );

/** `atLeast`: `requested` is a lower bound (the prompt was refused before it was tokenized). */
export const contextLengthExceeded = (
  limit: number,
  requested: number,
  param = "messages",
  atLeast = false,
) =>
  new ServiceError(
    "invalid_request",
    `This model's maximum context length is ${limit} tokens. However, your request needs ${atLeast ? "at least " : ""}${requested} tokens. Please reduce the length of the ${param} or the completion.`,
    { code: "context_length_exceeded", param },
  );

export const unauthenticated = (message: string) =>
  new ServiceError("unauthenticated", message, { code: "invalid_api_key" });

export const permissionDenied = (message: string, code: string) =>
  new ServiceError("permission_denied", message, { code });

/** The model's queue is full: nothing was done, and a short wait may help. */
export const overloaded = (retryAfterSeconds: number) =>
  new ServiceError(
    "rate_limited",
    "The server is busy with other requests. Please retry after a short wait.",
    {
      code: "server_overloaded",
      hints: {
        "retry-after": String(retryAfterSeconds),
        "retry-after-ms": String(retryAfterSeconds * 1000),
      },
    },
  );

export const serviceUnavailable = (message: string, cause?: unknown) =>
  new ServiceError("unavailable", message, { code: "service_unavailable", cause });

/** Caller-supplied text quoted in a message is clipped: errors are logged and shown to people. */
export function clip(text: string, max = 128): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
