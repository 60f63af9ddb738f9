import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Logger } from "pino";
import { chatRoutes } from "./api/chat/routes.js";
import { modelRoutes } from "./api/models/routes.js";
import { operationsRoutes } from "./api/operations/routes.js";
import type { Config } from "./config/schema.js";
import { defaultIds, type IdGenerator } from "./core/ids.js";
import { clientErrorHandler, installErrorHandling } from "./http/error-handler.js";
import { processingMs } from "./http/request-context.js";
import { createLogger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import type { ModelRegistry } from "./router/model-registry.js";

export interface AppDeps {
  registry: ModelRegistry;
  logger?: Logger;
  ids?: IdGenerator;
  /** Wall clock in ms (for `created` fields). */
  now?: () => number;
  /** Aborted when shutdown stops waiting for in-flight work. */
  shutdown?: AbortSignal;
}

export interface App {
  fastify: FastifyInstance;
  metrics: Metrics;
  /** Marks the app as draining: /ready turns 503 so load balancers stop sending work. */
  beginShutdown(): void;
}

/** A client-sent request id is kept when it is short and plain; anything else is replaced. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function buildApp(config: Config, deps: AppDeps): App {
  const logger = deps.logger ?? createLogger(config.log_level);
  const ids = deps.ids ?? defaultIds;
  const metrics = new Metrics(deps.registry);
  let shuttingDown = false;

  const fastify: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Our own onResponse line replaces Fastify's per-request lines.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "requestId" }),
    bodyLimit: config.body_limit_bytes,
    requestTimeout: config.request_timeout_ms,
    connectionTimeout: 0,
    keepAliveTimeout: 5_000,
    http: { maxHeaderSize: config.header_limit_bytes, headersTimeout: config.headers_timeout_ms },
    clientErrorHandler,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    requestIdHeader: false,
    genReqId: (req) => {
      const sent = req.headers["x-request-id"];
      return typeof sent === "string" && SANE_REQUEST_ID.test(sent) ? sent : ids.request();
    },
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: true },
  });

  fastify.decorateRequest("telemetry", null as never);
  fastify.decorateRequest("startedAt", 0);
  fastify.addHook("onRequest", async (request, reply) => {
    request.startedAt = performance.now();
    request.telemetry = {};
    reply.header("x-request-id", request.id);
  });
  fastify.addHook("onSend", async (request, reply, payload) => {
    reply.header("openai-processing-ms", processingMs(request));
    return payload;
  });

  const finish = (request: FastifyRequest, status: number) => {
    const route = request.routeOptions.url ?? "unknown";
    const seconds = (performance.now() - request.startedAt) / 1000;
    metrics.requests.inc({ method: request.method, route, status: String(status) });
    metrics.latency.observe({ route }, seconds);
    const t = request.telemetry;
    if (t.model && t.timeToFirstTokenMs !== undefined)
      metrics.timeToFirstToken.observe({ model: t.model }, t.timeToFirstTokenMs / 1000);
    // One line per request; never bodies, prompts or completions.
    request.log.info(
      {
        method: request.method,
        route,
        status,
        ms: Math.round(seconds * 1000),
        ...t,
        timeToFirstTokenMs: t.timeToFirstTokenMs === undefined ? undefined : Math.round(t.timeToFirstTokenMs),
      },
      "request",
    );
  };
  fastify.addHook("onResponse", async (request, reply) => finish(request, reply.statusCode));

  installErrorHandling(fastify);
  const shutdown = deps.shutdown ?? new AbortController().signal;
  void fastify.register(operationsRoutes, {
    registry: deps.registry,
    metrics,
    isShuttingDown: () => shuttingDown,
  });
  void fastify.register(modelRoutes, { registry: deps.registry });
  void fastify.register(chatRoutes, {
    registry: deps.registry,
    metrics,
    ids,
    now: deps.now ?? Date.now,
    shutdown,
    maxN: config.max_n,
  });

  return {
    fastify,
    metrics,
    beginShutdown: () => {
      shuttingDown = true;
    },
  };
}
