import { setMaxListeners } from "node:events";
import type { FastifyReply, FastifyRequest } from "fastify";

/** What a route learnt about a request, for the one log line and the metrics written at its end. */
export interface RequestTelemetry {
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  timeToFirstTokenMs?: number;
  stream?: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    telemetry: RequestTelemetry;
    startedAt: number;
  }
}

/**
 * An AbortSignal for the work a request starts: aborted when the client disconnects before the
 * response is complete, or when shutdown gives up waiting.
 */
export function requestAbortSignal(reply: FastifyReply, shutdown: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("client disconnected"));
  };
  reply.raw.once("close", onClose);
  const signal = AbortSignal.any([controller.signal, shutdown]);
  // Each of up to n=128 parallel choices listens on the same signal; that is expected, not a leak.
  setMaxListeners(256, signal);
  return signal;
}

export function processingMs(request: FastifyRequest): string {
  return String(Math.max(0, Math.round(performance.now() - request.startedAt)));
}

/**
 * The headers a reply holds so far (request id, rate limits, CORS), for a route that takes over
 * the socket to stream: hijacking skips Fastify's own header writing, and a browser drops a
 * stream that lacks its CORS headers.
 */
export function pendingHeaders(request: FastifyRequest, reply: FastifyReply): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  headers["openai-processing-ms"] = processingMs(request);
  return headers;
}
