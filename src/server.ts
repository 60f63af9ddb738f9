import type { Logger } from "pino";
import { BatchWorker } from "./api/batches/worker.js";
import { IngestionWorker } from "./api/vector-stores/ingestion-worker.js";
import { type App, buildApp } from "./app.js";
import { type Access, buildAccess } from "./composition/build-access.js";
import { buildFiles, type FilesFeature, vectorIndexFor } from "./composition/build-files.js";
import { buildRegistry, loadStartupModels } from "./composition/build-registry.js";
import type { Config } from "./config/schema.js";
import { createLogger } from "./observability/logger.js";
import type { ModelRegistry } from "./router/model-registry.js";

export interface RunningServer {
  app: App;
  registry: ModelRegistry;
  access: Access;
  files: FilesFeature;
  batchWorker: BatchWorker;
  ingestionWorker: IngestionWorker;
  url: string;
  /** Stops accepting, lets in-flight requests finish within the grace period, then cancels them. */
  stop(): Promise<void>;
}

/** The port (or address) cannot be had: said at once, before any model is loaded. */
export class ListenError extends Error {
  override name = "ListenError";
}

/**
 * Builds, listens, then loads: the whole `serve` command without the process signal wiring.
 * The port is bound before any model loads (which can take minutes), so a busy port fails at
 * once; while models load, /health answers and /ready is 503. Resolves once they are loaded.
 */
export async function startServer(
  config: Config,
  options: { logger?: Logger; registry?: ModelRegistry; now?: () => number } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.log_level);
  const registry = options.registry ?? (await buildRegistry(config, logger));
  const closeModels = async () => {
    if (!options.registry) await registry.close();
  };
  const modelNames = () => registry.all().flatMap((d) => [d.id, ...d.aliases]);
  const now = options.now ?? Date.now;
  const access = await buildAccess(config, logger, { modelNames, now });
  const files = buildFiles(config, access.storage, logger, { now });
  const shutdown = new AbortController();
  let ingestionWorker: IngestionWorker | undefined;
  const app = buildApp(config, {
    registry,
    logger,
    now,
    shutdown: shutdown.signal,
    access,
    files: {
      files: files.files,
      uploads: files.uploads,
      batches: access.storage.batches,
      vectorStores: {
        stores: access.storage.vectorStores,
        chunks: vectorIndexFor(config, access.storage, logger),
        embeddingModel: config.vector_stores.embedding_model,
        rewriteModel: config.vector_stores.rewrite_model,
        wakeIngestion: () => ingestionWorker?.wake(),
      },
    },
  });
  let address: string;
  try {
    address = await listen(app, config);
    logger.info({ address }, "port bound; loading models (/ready answers 503 until they are loaded)");
    await loadStartupModels(registry, logger);
  } catch (err) {
    await app.fastify.close();
    await files.close();
    await access.close();
    await closeModels();
    throw err;
  }
  const batchWorker = new BatchWorker({
    batches: access.storage.batches,
    files: files.files,
    lines: app.batchLines,
    logger,
    concurrency: config.batches.concurrency,
    leaseMs: config.batches.lease_ms,
    pollIntervalMs: config.batches.poll_interval_ms,
    maxAttempts: config.batches.max_attempts,
  });
  batchWorker.start();
  const vectorSettings = config.vector_stores;
  ingestionWorker = new IngestionWorker({
    stores: access.storage.vectorStores,
    files: files.files,
    generation: app.batchLines.generation,
    now,
    logger,
    concurrency: vectorSettings.concurrency,
    leaseMs: vectorSettings.lease_ms,
    pollIntervalMs: vectorSettings.poll_interval_ms,
    maxAttempts: vectorSettings.max_attempts,
    embedBatchSize: vectorSettings.embed_batch_size,
    maxFileBytes: vectorSettings.max_file_bytes,
    telemetry: {
      stage: (stage, seconds) => app.metrics.ingestionSeconds.inc({ stage }, seconds),
      chunks: (count) => app.metrics.ingestedChunks.inc(count),
      completed: (bytes) => app.metrics.ingestedBytes.inc(bytes),
    },
  });
  ingestionWorker.start();
  logger.info({ address }, "switchboard is listening");

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      app.beginShutdown();
      const grace = setTimeout(
        () => shutdown.abort(new Error("server shutting down")),
        config.shutdown_grace_ms,
      );
      grace.unref();
      // Batch lines finish within the grace too; the rest give their leases back for the next start.
      await Promise.all([
        app.fastify.close(),
        batchWorker.stop(config.shutdown_grace_ms),
        ingestionWorker?.stop(config.shutdown_grace_ms),
      ]);
      clearTimeout(grace);
      await files.close();
      await access.close();
      await closeModels();
    })();
    return stopping;
  };
  return { app, registry, access, files, batchWorker, ingestionWorker, url: address, stop };
}

async function listen(app: App, config: Config): Promise<string> {
  try {
    return await app.fastify.listen({ host: config.host, port: config.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${config.host}:${config.port}`;
    if (code === "EADDRINUSE")
      throw new ListenError(
        `port ${config.port} on ${config.host} is already in use (another Switchboard, or another program). Stop it, or pick another port: --port N, SWITCHBOARD_PORT or port: in the config.`,
      );
    if (code === "EACCES")
      throw new ListenError(
        `not allowed to listen on ${where} (ports below 1024 need privileges): pick a port from 1024 up with --port N.`,
      );
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND")
      throw new ListenError(
        `cannot listen on ${where}: this machine has no such address (host: ${config.host}).`,
      );
    throw err;
  }
}
