import type { Logger } from "pino";
import { type App, buildApp } from "./app.js";
import { type Access, buildAccess } from "./composition/build-access.js";
import { buildRegistry, loadStartupModels } from "./composition/build-registry.js";
import type { Config } from "./config/schema.js";
import { createLogger } from "./observability/logger.js";
import type { ModelRegistry } from "./router/model-registry.js";

export interface RunningServer {
  app: App;
  registry: ModelRegistry;
  access: Access;
  url: string;
  /** Stops accepting, lets in-flight requests finish within the grace period, then cancels them. */
  stop(): Promise<void>;
}

/** Builds, loads and listens: the whole `serve` command without the process signal wiring. */
export async function startServer(
  config: Config,
  options: { logger?: Logger; registry?: ModelRegistry } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.log_level);
  const registry = options.registry ?? (await buildRegistry(config, logger));
  const access = await buildAccess(config, logger);
  const shutdown = new AbortController();
  const app = buildApp(config, {
    registry,
    logger,
    shutdown: shutdown.signal,
    access,
  });
  let address: string;
  try {
    await loadStartupModels(registry, logger);
    address = await app.fastify.listen({ host: config.host, port: config.port });
  } catch (err) {
    await access.close();
    throw err;
  }
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
      await app.fastify.close();
      clearTimeout(grace);
      await access.close();
      if (!options.registry) await Promise.allSettled(registry.all().map((d) => d.backend.close()));
    })();
    return stopping;
  };
  return { app, registry, access, url: address, stop };
}
