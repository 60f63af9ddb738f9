import { type ErrorKind, ServiceError, serviceUnavailable, statusOf } from "../core/errors.js";

/**
 * The one place where errors become the OpenAI error envelope
 * {"error":{"message","type","param","code"}}: responses, SSE error frames and the frames Node's
 * parser answers with all come from here.
 */

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface ErrorResponse {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: ErrorBody;
}

/** OpenAI's `type` for each kind of failure. */
const TYPE: Readonly<Record<ErrorKind, string>> = {
  invalid_request: "invalid_request_error",
  unauthenticated: "invalid_request_error",
  permission_denied: "permission_error",
  not_found: "not_found_error",
  unknown_model: "invalid_request_error",
  method_not_allowed: "invalid_request_error",
  request_timeout: "invalid_request_error",
  too_large: "invalid_request_error",
  headers_too_large: "invalid_request_error",
  rate_limited: "rate_limit_error",
  quota_exceeded: "insufficient_quota",
  unavailable: "server_error",
  bad_gateway: "server_error",
  gateway_timeout: "server_error",
  conflict: "invalid_request_error",
  internal: "server_error",
};

export function errorBody(error: ServiceError): ErrorBody {
  return { error: { message: error.message, type: TYPE[error.kind], param: error.param, code: error.code } };
}

/** Fastify's own errors that are the client's fault, as the errors clients expect. */
const FASTIFY_CLIENT_ERRORS: Record<string, () => ServiceError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () =>
    new ServiceError("too_large", "The request body is too large.", { code: "request_too_large" }),
  FST_ERR_CTP_INVALID_JSON_BODY: () => invalidJson(),
  FST_ERR_CTP_EMPTY_JSON_BODY: () =>
    new ServiceError("invalid_request", "The request body is empty; a JSON object was expected.", {
      code: "invalid_json",
    }),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () =>
    new ServiceError("invalid_request", "Unsupported content type; send the body as application/json.", {
      code: "invalid_content_type",
    }),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () =>
    new ServiceError("invalid_request", "The Content-Length header does not match the body.", {
      code: "invalid_body",
    }),
  FST_ERR_CTP_INVALID_TYPE: () =>
    new ServiceError("invalid_request", "Invalid content type header.", { code: "invalid_content_type" }),
};

const invalidJson = () =>
  new ServiceError("invalid_request", "The request body is not valid JSON.", { code: "invalid_json" });

/** Anything thrown while serving a request, as the error a client may see (never a stack or a path). */
export function toServiceError(err: unknown): ServiceError {
  if (err instanceof ServiceError) return err;
  const fastifyError = err as { code?: unknown; statusCode?: unknown } | undefined;
  const code = typeof fastifyError?.code === "string" ? fastifyError.code : undefined;
  const known = code ? FASTIFY_CLIENT_ERRORS[code] : undefined;
  if (known) return known();
  if (code === "FST_ERR_VALIDATION" || (err instanceof SyntaxError && fastifyError?.statusCode === 400)) {
    return invalidJson();
  }
  const status = fastifyError?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new ServiceError("invalid_request", "The request could not be processed.", {
      code: "invalid_request",
    });
  }
  return new ServiceError("internal", "The server had an error while processing your request.", {
    code: "internal_error",
  });
}

export function toErrorResponse(err: unknown): ErrorResponse {
  const error = toServiceError(err);
  return { status: statusOf(error.kind), headers: error.hints, body: errorBody(error) };
}

/**
 * The body of the error frame that ends a stream which already began. An error of ours keeps its
 * message (a model restarting says so, and that a retry may work); anything else is generic.
 */
export function streamErrorBody(err: unknown): ErrorBody {
  if (err instanceof ServiceError) return errorBody(err);
  return errorBody(
    new ServiceError("internal", "The server had an error while generating this response.", { code: null }),
  );
}

/** The frame a stream ends with when shutdown stops waiting for it. */
export const SHUTDOWN_STREAM_ERROR: ErrorBody = errorBody(
  serviceUnavailable("The server is shutting down and stopped this response before it was complete."),
);

export const hostNotAllowed = () =>
  new ServiceError(
    "permission_denied",
    "This server runs without API keys and answers only requests addressed to localhost, 127.0.0.1 or [::1]. To serve it under another name, add the name to allowed_hosts (or create an API key).",
    { code: "host_not_allowed" },
  );
