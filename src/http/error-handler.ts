import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError, type ErrorBody } from "./errors.js";

/** Fastify's own errors that are the client's fault, mapped to the statuses clients expect. */
const FASTIFY_CLIENT_ERRORS: Record<string, { status: number; message: string; code: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    message: "The request body is too large.",
    code: "request_too_large",
  },
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    message: "The request body is not valid JSON.",
    code: "invalid_json",
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    message: "The request body is empty; a JSON object was expected.",
    code: "invalid_json",
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 400,
    message: "Unsupported content type; send the body as application/json.",
    code: "invalid_content_type",
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    message: "The Content-Length header does not match the body.",
    code: "invalid_body",
  },
  FST_ERR_CTP_INVALID_TYPE: {
    status: 400,
    message: "Invalid content type header.",
    code: "invalid_content_type",
  },
};

/** Every error a client can see goes through here and leaves as the OpenAI error envelope. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const fastifyError = err as Partial<FastifyError> | undefined;
  const known = fastifyError?.code ? FASTIFY_CLIENT_ERRORS[fastifyError.code] : undefined;
  if (known) return new ApiError(known.status, known.message, { code: known.code });
  if (
    fastifyError?.code === "FST_ERR_VALIDATION" ||
    (err instanceof SyntaxError && fastifyError?.statusCode === 400)
  ) {
    return new ApiError(400, "The request body is not valid JSON.", { code: "invalid_json" });
  }
  const status = fastifyError?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new ApiError(status, "The request could not be processed.", { code: "invalid_request" });
  }
  return new ApiError(500, "The server had an error while processing your request.", {
    code: "internal_error",
  });
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const apiError = toApiError(err);
    if (apiError.status >= 500) request.log.error({ err, requestId: request.id }, "request failed");
    if (reply.sent || reply.raw.headersSent) return;
    void reply
      .code(apiError.status)
      .headers(apiError.headers)
      .type("application/json")
      .send(apiError.toBody());
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "/";
    const allowed = ["GET", "POST", "DELETE", "PUT", "PATCH"].filter(
      (method) => method !== request.method && app.hasRoute({ method, url: path }),
    );
    if (allowed.length > 0) {
      const error = new ApiError(405, `Method ${request.method} is not allowed for ${path}.`, {
        code: "method_not_allowed",
        headers: { allow: allowed.join(", ") },
      });
      return reply.code(405).headers(error.headers).type("application/json").send(error.toBody());
    }
    const error = new ApiError(404, `Unknown request URL: ${request.method} ${path}.`, {
      code: "unknown_url",
    });
    return reply.code(404).type("application/json").send(error.toBody());
  });
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (oversized headers, garbage,
 * timeouts) still answer with the JSON envelope, and with a request id like every other response.
 */
export function createClientErrorHandler(
  newRequestId: () => string,
): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => answerClientError(err, socket, newRequestId);
}

function answerClientError(err: NodeJS.ErrnoException, socket: Socket, newRequestId: () => string): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status = 400;
  let body: ErrorBody = envelope("The request could not be parsed.", "invalid_request");
  if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    body = envelope("The request headers are too large.", "request_header_fields_too_large");
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    body = envelope("The request took too long to arrive.", "request_timeout");
  }
  if (socket.writable) {
    const json = JSON.stringify(body);
    const reason =
      status === 431 ? "Request Header Fields Too Large" : status === 408 ? "Request Timeout" : "Bad Request";
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nX-Request-Id: ${newRequestId()}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}

function envelope(message: string, code: string): ErrorBody {
  return { error: { message, type: "invalid_request_error", param: null, code } };
}
