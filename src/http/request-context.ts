import type { FastifyReply, FastifyRequest } from "fastify";
import { HookedAbortController } from "../core/abort-hooks.js";
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

/** Per shutdown signal: the controllers of requests in flight, aborted together when it fires. */
const inFlightByShutdown = new WeakMap<AbortSignal, Set<AbortController>>();

function inFlightOf(shutdown: AbortSignal): Set<AbortController> {
  let inFlight = inFlightByShutdown.get(shutdown);
  if (!inFlight) {
    const requests = new Set<AbortController>();
    shutdown.addEventListener(
      "abort",
      () => {
        for (const controller of requests) controller.abort(shutdown.reason);
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
 * response is complete, or when shutdown gives up waiting. One controller per request, and one
 * shutdown listener for all of them: AbortSignal.any() would cost a composite signal and a
 * registration on the long-lived shutdown signal per request.
 */
export function requestAbortSignal(reply: FastifyReply, shutdown: AbortSignal): AbortSignal {
  return requestAbortController(reply, shutdown).signal;
}

/**
 * requestAbortSignal's controller, for a route that lets the generation service cut the request's
 * work through the same signal (GenerationCall.signalOwner) rather than make a second one.
 */
export function requestAbortController(reply: FastifyReply, shutdown: AbortSignal): HookedAbortController {
  // Hooked: the upstream exchange it starts is cut through the controller, not a listener.
  const controller = new HookedAbortController();
  if (shutdown.aborted) {
    controller.abort(shutdown.reason);
    return controller;
  }
  const inFlight = inFlightOf(shutdown);
  inFlight.add(controller);
  // 'close' comes once per response: on() spares the wrapper once() would allocate.
  reply.raw.on("close", () => {
    inFlight.delete(controller);
    if (!reply.raw.writableFinished) controller.abort(new Error("client disconnected"));
  });
  return controller;
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
