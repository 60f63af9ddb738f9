import { isIP } from "node:net";
import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { AdminService } from "../admin/admin-service.js";
import { Authenticator } from "../auth/authenticator.js";
import type { Config } from "../config/schema.js";
import { LimitEnforcer } from "../limits/limit-enforcer.js";
import type { LimitStore } from "../limits/limit-store.js";
import { MemoryLimitStore } from "../limits/memory-limit-store.js";
import { openStorage, type Storage } from "../storage/storage.js";
import { Metering } from "../usage/metering.js";
import { UsageRecorder } from "../usage/usage-recorder.js";

/** Everything the access layer is made of; the app takes its authenticator, metering, admin and usage. */
export interface Access {
  authenticator: Authenticator;
  metering: Metering;
  admin: AdminService;
  usage: Storage["usage"];
  responses: Storage["responses"];
  conversations: Storage["conversations"];
  /** Other instances may use the same database (Postgres); SQLite belongs to this one. */
  sharedDatabase: boolean;
  storage: Storage;
  limitStore: LimitStore;
  recorder: UsageRecorder;
  /** Flushes usage and closes storage and Redis. */
  close(): Promise<void>;
}

/** Where the database is: the configured URL, or a SQLite file in the data dir. */
export function databaseUrl(config: Pick<Config, "database" | "data_dir">): string {
  return config.database ?? join(resolve(config.data_dir), "switchboard.db");
}

export function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** Storage, keys, limits and usage recording for a server built from config. */
export async function buildAccess(
  config: Config,
  logger: Logger,
  options: { now?: () => number; modelNames?: () => readonly string[] } = {},
): Promise<Access> {
  const now = options.now ?? Date.now;
  const storage = await openStorage({
    url: databaseUrl(config),
    vectorCacheBytes: config.vector_stores.cache_bytes,
    vectorIndex: config.vector_stores.index,
  });
  // The Redis client is loaded only when Redis is configured.
  const limitStore: LimitStore = config.redis
    ? new (await import("../limits/redis-limit-store.js")).RedisLimitStore(config.redis, {
        prefix: config.redis_prefix,
      })
    : new MemoryLimitStore(now);
  const authenticator = new Authenticator({
    repositories: storage,
    loopbackOnly: isLoopbackHost(config.host),
    bootstrapAdminKey: config.admin_key,
    cacheTtlMs: config.auth_cache_ttl_ms,
    now,
    // Keys created by the CLI on a laptop server's database switch auth on: say so, loudly.
    onModeChange: ({ required, activeKeys }) =>
      logger.warn(
        { auth: required ? "required" : "off", activeKeys },
        required
          ? "AUTH IS NOW ON: an API key exists in the database; requests without a key get 401"
          : "AUTH IS NOW OFF: no active API key remains; loopback requests need no key",
      ),
  });
  const recorder = new UsageRecorder({ usage: storage.usage, apiKeys: storage.apiKeys, logger, now });
  const enforcer = new LimitEnforcer(limitStore, storage.usage, now);
  const admin = new AdminService(storage, {
    now,
    onChange: () => authenticator.invalidate(),
    modelNames: options.modelNames,
  });
  logger.info(
    {
      database: storage.database.dialect,
      limits: config.redis ? "redis" : "memory",
      auth: (await authenticator.required()) ? "required" : "off (loopback, no keys)",
    },
    "access control ready",
  );
  return {
    storage,
    limitStore,
    recorder,
    authenticator,
    metering: new Metering(enforcer, recorder, now),
    admin,
    usage: storage.usage,
    responses: storage.responses,
    conversations: storage.conversations,
    sharedDatabase: storage.database.dialect === "postgres",
    close: async () => {
      await recorder.close();
      await Promise.allSettled([limitStore.close(), storage.close()]);
    },
  };
}
