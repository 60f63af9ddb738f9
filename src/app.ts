import fastifyCors from "@fastify/cors";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Logger } from "pino";
import type { AdminService } from "./admin/admin-service.js";
import { adminRoutes } from "./api/admin/routes.js";
import type { LineContext } from "./api/batches/line-runner.js";
import { batchRoutes } from "./api/batches/routes.js";
import { BatchService } from "./api/batches/service.js";
import { chatRoutes } from "./api/chat/routes.js";
import { completionRoutes } from "./api/completions/routes.js";
import { conversationRoutes } from "./api/conversations/routes.js";
import { embeddingRoutes } from "./api/embeddings/routes.js";
import { fileRoutes } from "./api/files/routes.js";
import type { FileService } from "./api/files/service.js";
import { modelRoutes } from "./api/models/routes.js";
import { operationsRoutes } from "./api/operations/routes.js";
import { ResponseTurns } from "./api/responses/response-turns.js";
import { responseRoutes } from "./api/responses/routes.js";
import { tokenizeRoutes } from "./api/tokenize/routes.js";
import { uploadRoutes } from "./api/uploads/routes.js";
import type { UploadService } from "./api/uploads/service.js";
import { vectorStoreRoutes } from "./api/vector-stores/routes.js";
import { VectorStoreSearch } from "./api/vector-stores/search.js";
import { VectorStoreService } from "./api/vector-stores/service.js";
import type { Authenticator } from "./auth/authenticator.js";
import { OPEN_PRINCIPAL, type Principal } from "./auth/principal.js";
import type { Config } from "./config/schema.js";
import { CONSOLE_PREFIX, consoleRoutes, defaultConsoleRoot } from "./console/console-routes.js";
import { invalidRequest, notFound, serviceUnavailable } from "./core/errors.js";
import { defaultIds, type IdGenerator } from "./core/ids.js";
import { GenerationService } from "./generation/service.js";
import { corsOptions } from "./http/cors.js";
import { createClientErrorHandler, installErrorHandling } from "./http/error-handler.js";
import { hostNotAllowed, toErrorResponse } from "./http/errors.js";
import { HostGuard } from "./http/host-guard.js";
import { processingMs } from "./http/request-context.js";
import type { StreamPolicy } from "./http/sse.js";
import { createLogger } from "./observability/logger.js";
import { Metrics } from "./observability/metrics.js";
import { RequestLogger } from "./observability/request-logger.js";
import type { ModelRegistry } from "./router/model-registry.js";
import type {
  BatchRepository,
  ConversationRepository,
  ResponseRepository,
  UsageRepository,
} from "./storage/repositories/types.js";
import type { ChunkIndex, VectorStoreRepository } from "./storage/repositories/vector-store-types.js";
import { Metering } from "./usage/metering.js";

export interface AppDeps {
  registry: ModelRegistry;
  logger?: Logger;
  ids?: IdGenerator;
  /** Wall clock in ms (for `created` fields). */
  now?: () => number;
  /** Aborted when shutdown stops waiting for in-flight work. */
  shutdown?: AbortSignal;
  /** Keys, limits, usage and the admin API. Without it every caller is the default project, unlimited. */
  access?: AccessDeps;
  /** Files, uploads and batches (they need storage); without it those routes are absent. */
  files?: FilesDeps;
  /** The built web console's folder; default: build/console in the package, when it was built. */
  consoleRoot?: string;
}

export interface FilesDeps {
  files: FileService;
  uploads: UploadService;
  batches: BatchRepository;
  /** Vector stores over these files; without it /v1/vector_stores is absent. */
  vectorStores?: VectorStoresDeps;
}

export interface VectorStoresDeps {
  stores: VectorStoreRepository;
  chunks: ChunkIndex;
  /** The embedding model new stores use; undefined = the first model that embeds. */
  embeddingModel?: string;
  /** The chat model that rewrites queries (rewrite_query). */
  rewriteModel?: string;
  /** Tells the ingestion workers that files were attached. */
  wakeIngestion: () => void;
}

export interface AccessDeps {
  authenticator: Authenticator;
  metering: Metering;
  admin: AdminService;
  usage: UsageRepository;
  /** Stored responses (the Responses API with store: true). */
  responses: ResponseRepository;
  conversations: ConversationRepository;
  /** Other instances may use the same database (Postgres). */
  sharedDatabase: boolean;
}

/** Routes anyone may call: liveness must work for orchestrators that hold no key. */
const PUBLIC_ROUTES: ReadonlySet<string> = new Set(["/health"]);

/** The console's static files are public too: they hold no data, and the API calls they make carry a key. */
const isPublicRoute = (url: string) => PUBLIC_ROUTES.has(url) || url.startsWith(CONSOLE_PREFIX);

export interface App {
  fastify: FastifyInstance;
  metrics: Metrics;
  /** Marks the app as draining: /ready turns 503 so load balancers stop sending work. */
  beginShutdown(): void;
  /** What batch lines run with: the same generation service, ids and clock as the routes. */
  batchLines: LineContext;
}

/** A client-sent request id is kept when it is short and plain; anything else is replaced. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function buildApp(config: Config, deps: AppDeps): App {
  const logger = deps.logger ?? createLogger(config.log_level);
  const ids = deps.ids ?? defaultIds;
  const metrics = new Metrics(deps.registry);
  const shutdown = deps.shutdown ?? new AbortController().signal;
  const streamPolicy: StreamPolicy = {
    keepAliveMs: config.sse_keep_alive_ms,
    drainTimeoutMs: config.sse_drain_timeout_ms,
    cancel: shutdown,
  };
  const hostGuard = new HostGuard(config.allowed_hosts);
  let shuttingDown = false;
  /** Set once close() begins: requests still arriving on open connections are turned away. */
  let closing = false;

  const fastify: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Our own onResponse line replaces Fastify's per-request lines.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "requestId" }),
    // A request's logger binds its id only when a line is written through it (RequestLogger).
    childLoggerFactory: (logger, bindings, options) => new RequestLogger(logger, bindings, options),
    bodyLimit: config.body_limit_bytes,
    requestTimeout: config.request_timeout_ms,
    connectionTimeout: 0,
    keepAliveTimeout: config.keep_alive_timeout_ms,
    http: {
      maxHeaderSize: config.header_limit_bytes,
      headersTimeout: config.headers_timeout_ms,
      // Node checks header and request timeouts only this often (30 s by default), so a slowloris
      // client would outlive headers_timeout_ms by up to that much.
      connectionsCheckingInterval: 1_000,
    },
    clientErrorHandler: createClientErrorHandler(() => ids.request()),
    // Fastify's own 503 is not our envelope; the onRequest hook below answers instead.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    requestIdHeader: false,
    genReqId: (req) => {
      const sent = req.headers["x-request-id"];
      return typeof sent === "string" && SANE_REQUEST_ID.test(sent) ? sent : ids.request();
    },
    routerOptions: { maxParamLength: 512, ignoreTrailingSlash: true },
    // Paths the router rejects before any hook runs (broken percent-encoding, absurdly long ids)
    // still get the envelope; an id that long cannot exist, so it is a 404.
    frameworkErrors: (error, request, reply) => {
      const tooLong = error.code === "FST_ERR_MAX_PARAM_LENGTH";
      const response = toErrorResponse(
        tooLong
          ? notFound("No such object: the id in the path is too long.", "not_found")
          : invalidRequest("The request path is not a valid URL.", null, "invalid_url"),
      );
      const raw = reply.raw;
      const body = JSON.stringify(response.body);
      raw.writeHead(response.status, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "x-request-id": String(request.id),
      });
      raw.end(body);
    },
  });

  fastify.decorate("streamPolicy", streamPolicy);
  fastify.decorateRequest("telemetry", null as never);
  fastify.decorateRequest("startedAt", 0);
  fastify.decorateRequest("principal", null as never);
  fastify.decorateRequest("logged", false);
  const authenticator = deps.access?.authenticator;
  /** Auth, unless the caller is known at once: the host guard, preflights, the key looked up. */
  const admit = async (request: FastifyRequest) => {
    // Without keys, the Host header is the guard against DNS rebinding (auth off means loopback).
    const authOn = authenticator ? await authenticator.required() : false;
    if (!authOn && !hostGuard.allows(request.headers.host)) throw hostNotAllowed();
    // A CORS preflight carries no credentials; the CORS plugin answers it (or 404s it), no work done.
    if (request.method === "OPTIONS") return;
    // Authenticate before the body is read: a caller without a key costs no parsing.
    request.principal = authenticator ? await authenticator.authenticate(request.headers) : OPEN_PRINCIPAL;
  };
  // A callback hook: a key whose verdict is cached (nearly every request) is admitted without
  // a promise; an async hook costs one, and a tick, per request.
  fastify.addHook("onRequest", (request, reply, done) => {
    request.startedAt = performance.now();
    request.telemetry = {};
    reply.header("x-request-id", request.id);
    // A client that goes away (or is cut off) before the response ends gets no 'finish', so
    // Fastify's onResponse never runs: the request is still logged and counted, as 499.
    // 'close' comes once per response: on() spares the wrapper once() would allocate.
    reply.raw.on("close", () => {
      if (!request.logged) finish(request, 499, true);
    });
    if (closing) {
      const response = toErrorResponse(serviceUnavailable("The server is shutting down; retry the request."));
      // A hook that answers does not call done().
      reply.code(response.status).header("connection", "close").type("application/json").send(response.body);
      return;
    }
    if (isPublicRoute(request.routeOptions.url ?? "")) return done();
    const known = request.method === "OPTIONS" ? undefined : authenticator?.cachedPrincipal(request.headers);
    if (known) {
      request.principal = known;
      return done();
    }
    admit(request).then(() => done(), done);
  });
  fastify.addHook("preClose", async () => {
    closing = true;
  });
  // Callback hooks where nothing is awaited: an async hook costs a promise and a tick per request.
  fastify.addHook("onSend", (request, reply, payload, done) => {
    reply.header("openai-processing-ms", processingMs(request));
    done(null, payload);
  });

  const finish = (request: FastifyRequest, status: number, clientGone = false) => {
    request.logged = true;
    const route = request.routeOptions.url ?? "unknown";
    const seconds = (performance.now() - request.startedAt) / 1000;
    metrics.requests.labels(request.method, route, String(status)).inc();
    metrics.latency.labels(route).observe(seconds);
    const t = request.telemetry;
    if (t.model && t.timeToFirstTokenMs !== undefined)
      metrics.timeToFirstToken.labels(t.model).observe(t.timeToFirstTokenMs / 1000);
    // One line per request; never bodies, prompts or completions. Who called is the key's id and
    // project (absent before authentication, or on public routes), never the secret.
    // The line's fields are gathered only when it is written (not at warn, error or silent).
    // The server's logger: the line names its request itself, and binds no child to do it.
    const log = fastify.log as Logger;
    if (!log.isLevelEnabled("info")) return;
    const principal = request.principal as Principal | null;
    log.info(
      {
        requestId: request.id,
        method: request.method,
        route,
        status,
        projectId: principal?.projectId,
        keyId: principal?.keyId ?? undefined,
        ms: Math.round(seconds * 1000),
        clientGone: clientGone || undefined,
        ...t,
        timeToFirstTokenMs: t.timeToFirstTokenMs === undefined ? undefined : Math.round(t.timeToFirstTokenMs),
      },
      "request",
    );
  };
  fastify.addHook("onResponse", (request, reply, done) => {
    finish(request, reply.statusCode);
    // close() only reaps connections idle when it is called; one that finishes its response later
    // would hold the process for the whole keep-alive timeout.
    if (closing) setImmediate(() => fastify.server.closeIdleConnections());
    done();
  });

  installErrorHandling(fastify);
  if (config.cors_origins.length > 0) void fastify.register(fastifyCors, corsOptions(config.cors_origins));
  void fastify.register(operationsRoutes, {
    registry: deps.registry,
    metrics,
    isShuttingDown: () => shuttingDown,
  });
  void fastify.register(modelRoutes, { registry: deps.registry });
  const generation = new GenerationService({
    registry: deps.registry,
    metering: deps.access?.metering ?? new Metering(undefined, undefined),
    observer: metrics,
  });
  // What every generating route takes: the service, ids, the clock, shutdown and the n cap.
  const generating = { generation, ids, now: deps.now ?? Date.now, shutdown, maxN: config.max_n };
  void fastify.register(completionRoutes, generating);
  void fastify.register(embeddingRoutes, { generation, shutdown });
  void fastify.register(tokenizeRoutes, { generation });
  void fastify.register(chatRoutes, generating);
  // Vector stores (their routes, and the Responses API's file_search tool).
  const vectors = deps.files?.vectorStores;
  const fileSearch =
    vectors && deps.files
      ? {
          service: new VectorStoreService({
            stores: vectors.stores,
            files: deps.files.files,
            generation,
            now: generating.now,
            embeddingModel: vectors.embeddingModel,
            embeddingModels: () =>
              deps.registry
                .all()
                .filter((d) => d.backend.capabilities.embeddings)
                .map((d) => d.id),
            wakeIngestion: vectors.wakeIngestion,
          }),
          search: new VectorStoreSearch({
            stores: vectors.stores,
            chunks: vectors.chunks,
            generation,
            rewriteModel: vectors.rewriteModel,
          }),
        }
      : undefined;
  if (fileSearch) void fastify.register(vectorStoreRoutes, { ...fileSearch, shutdown });
  void fastify.register(responseRoutes, {
    ...generating,
    responses: deps.access?.responses,
    conversations: deps.access?.conversations,
    soleInstance: deps.access?.sharedDatabase !== true,
    fileSearch,
  });
  if (deps.access) {
    void fastify.register(conversationRoutes, {
      conversations: deps.access.conversations,
      now: generating.now,
    });
  }
  if (deps.files) {
    void fastify.register(fileRoutes, { files: deps.files.files });
    void fastify.register(uploadRoutes, { uploads: deps.files.uploads, files: deps.files.files });
    const batches = new BatchService({
      batches: deps.files.batches,
      files: deps.files.files,
      now: generating.now,
    });
    void fastify.register(batchRoutes, { batches });
  }
  if (deps.access) {
    void fastify.register(adminRoutes, {
      admin: deps.access.admin,
      usage: deps.access.usage,
      registry: deps.registry,
    });
  }
  if (config.console) {
    const root = deps.consoleRoot ?? defaultConsoleRoot();
    if (root) void fastify.register(consoleRoutes, { root });
    else logger.warn("The web console is not built (npm run build), so /console is not served.");
  }

  return {
    fastify,
    metrics,
    beginShutdown: () => {
      shuttingDown = true;
    },
    batchLines: {
      ...generating,
      maxLineBytes: config.body_limit_bytes,
      responses: new ResponseTurns({
        ...generating,
        responses: deps.access?.responses,
        conversations: deps.access?.conversations,
      }),
    },
  };
}
