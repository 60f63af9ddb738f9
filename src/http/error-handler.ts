import type { Socket } from "node:net";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ServiceError, statusOf } from "../core/errors.js";
import { type ErrorBody, errorBody, toErrorResponse } from "./errors.js";

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const response = toErrorResponse(err);
    if (response.status >= 500) request.log.error({ err }, "request failed");
    if (reply.sent || reply.raw.headersSent) return;
    void reply.code(response.status).headers(response.headers).type("application/json").send(response.body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "/";
    const allowed = ["GET", "POST", "DELETE", "PUT", "PATCH"].filter(
      (method) => method !== request.method && app.hasRoute({ method, url: path }),
    );
    const error =
      allowed.length > 0
        ? new ServiceError("method_not_allowed", `Method ${request.method} is not allowed for ${path}.`, {
            code: "method_not_allowed",
            hints: { allow: allowed.join(", ") },
          })
        : new ServiceError("not_found", `Unknown request URL: ${request.method} ${path}.`, {
            code: "unknown_url",
          });
    const response = toErrorResponse(error);
    return reply.code(response.status).headers(response.headers).type("application/json").send(response.body);
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
  let error = new ServiceError("invalid_request", "The request could not be parsed.", {
    code: "invalid_request",
  });
  if (err.code === "HPE_HEADER_OVERFLOW") {
    error = new ServiceError("headers_too_large", "The request headers are too large.", {
      code: "request_header_fields_too_large",
    });
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    error = new ServiceError("request_timeout", "The request took too long to arrive.", {
      code: "request_timeout",
    });
  }
  if (socket.writable) {
    const status = statusOf(error.kind);
    const json = JSON.stringify(errorBody(error) satisfies ErrorBody);
    socket.write(
      `HTTP/1.1 ${status} ${REASONS[status] ?? "Bad Request"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nX-Request-Id: ${newRequestId()}\r\nConnection: close\r\n\r\n${json}`,
    );
  }
  socket.destroy();
}

const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
};
