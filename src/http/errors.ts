/**
 * One error type for everything a client can see. Every failure, ours or a library's, is turned
 * into this shape by the app's error handler, so clients always get
 * {"error":{"message","type","param","code"}} with a fitting status and nothing internal.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  readonly param: string | null;
  /** Extra response headers (retry-after on overload, for example). */
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    message: string,
    opts: {
      type?: string;
      code?: string | null;
      param?: string | null;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? defaultType(status);
    this.code = opts.code ?? null;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

function defaultType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, { param, code });

export const modelNotFound = (model: string) =>
  new ApiError(404, `The model '${clip(model)}' does not exist or you do not have access to it.`, {
    type: "invalid_request_error",
    code: "model_not_found",
    param: "model",
  });

/** `atLeast`: `requested` is a lower bound (the prompt was refused before it was tokenized). */
export const contextLengthExceeded = (
  limit: number,
  requested: number,
  param = "messages",
  atLeast = false,
) =>
  new ApiError(
    400,
    `This model's maximum context length is ${limit} tokens. However, your request needs ${atLeast ? "at least " : ""}${requested} tokens. Please reduce the length of the ${param} or the completion.`,
    { code: "context_length_exceeded", param },
  );

export const overloaded = (retryAfterSeconds: number) =>
  new ApiError(429, "The server is busy with other requests. Please retry after a short wait.", {
    type: "rate_limit_error",
    code: "server_overloaded",
    headers: {
      "retry-after": String(retryAfterSeconds),
      "retry-after-ms": String(retryAfterSeconds * 1000),
    },
  });

export const serviceUnavailable = (message: string, cause?: unknown) => {
  const error = new ApiError(503, message, { type: "server_error", code: "service_unavailable" });
  if (cause !== undefined) error.cause = cause;
  return error;
};

export const hostNotAllowed = () =>
  new ApiError(
    403,
    "This server runs without API keys and answers only requests addressed to localhost, 127.0.0.1 or [::1]. To serve it under another name, add the name to allowed_hosts (or create an API key).",
    { code: "host_not_allowed" },
  );

/** Caller-supplied text quoted in a message is clipped: errors are logged and shown to people. */
function clip(text: string, max = 128): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
