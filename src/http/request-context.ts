import type { FastifyReply, FastifyRequest } from "fastify";
import { CancelSource } from "../core/cancellation.js";
import { SseWriter, type StreamPolicy } from "./sse.js";

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
    /** Its one log line is written (a response that never finishes is logged on close). */
    logged: boolean;
  }
  interface FastifyInstance {
    /** The server's stream settings, which every event stream a route opens follows. */
    streamPolicy: StreamPolicy;
  }
}

/** Per shutdown signal: the cancellations of requests in flight, cut together when it fires. */
const inFlightByShutdown = new WeakMap<AbortSignal, Set<CancelSource>>();

function inFlightOf(shutdown: AbortSignal): Set<CancelSource> {
  let inFlight = inFlightByShutdown.get(shutdown);
  if (!inFlight) {
    const requests = new Set<CancelSource>();
    shutdown.addEventListener(
      "abort",
      () => {
        for (const cancel of requests) cancel.abort(shutdown.reason);
      },
      { once: true },
    );
    inFlightByShutdown.set(shutdown, requests);
    inFlight = requests;
  }
  return inFlight;
}

/**
 * An AbortSignal for the work a request starts: aborted when the client disconnects before the
 * response is complete, or when shutdown gives up waiting.
 */
export function requestAbortSignal(reply: FastifyReply, shutdown: AbortSignal): AbortSignal {
  return requestCancellation(reply, shutdown).signal;
}

/**
 * The same, as a Cancellation: a route that hands it to the generation service makes no
 * AbortSignal unless a backend asks for one (a local engine; an upstream takes a hook). One per
 * request, and one shutdown listener for all of them: AbortSignal.any() would cost a composite
 * signal and a registration on the long-lived shutdown signal per request.
 */
export function requestCancellation(reply: FastifyReply, shutdown: AbortSignal): CancelSource {
  const cancel = new CancelSource();
  if (shutdown.aborted) {
    cancel.abort(shutdown.reason);
    return cancel;
  }
  const inFlight = inFlightOf(shutdown);
  inFlight.add(cancel);
  // 'close' comes once per response: on() spares the wrapper once() would allocate.
  reply.raw.on("close", () => {
    inFlight.delete(cancel);
    if (!reply.raw.writableFinished) cancel.abort(new Error("client disconnected"));
  });
  return cancel;
}

/**
 * The event stream a route writes its response as: the server's stream policy, and the headers
 * the reply holds so far. (The policy is read from the server when a stream opens, not attached
 * to every response: a per-response WeakMap entry cost ~1 µs on requests that never stream.)
 */
export function openEventStream(request: FastifyRequest, reply: FastifyReply): SseWriter {
  return new SseWriter(reply.raw, {
    ...request.server.streamPolicy,
    headers: pendingHeaders(request, reply),
  });
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
