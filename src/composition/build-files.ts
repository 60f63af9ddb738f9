import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { FileService } from "../api/files/service.js";
import { UploadService } from "../api/uploads/service.js";
import type { Config } from "../config/schema.js";
import type { BlobStore } from "../storage/blobs/blob-store.js";
import { DatabaseBlobStore } from "../storage/blobs/database-blob-store.js";
import { FilesystemBlobStore } from "../storage/blobs/filesystem-blob-store.js";
import { KyselyChunkIndex } from "../storage/repositories/chunk-index.js";
import type { ChunkIndex } from "../storage/repositories/vector-store-types.js";
import type { Storage } from "../storage/storage.js";

/** Files and their housekeeping, built over the access layer's storage. */
export interface FilesFeature {
  files: FileService;
  uploads: UploadService;
  blobs: BlobStore;
  /** Stops the sweeper. */
  close(): Promise<void>;
}

export function blobStoreFor(config: Config, storage: Storage): BlobStore {
  const kind =
    config.files.store === "auto"
      ? storage.database.dialect === "postgres"
        ? "database"
        : "filesystem"
      : config.files.store;
  return kind === "database"
    ? new DatabaseBlobStore(storage.database.db)
    : new FilesystemBlobStore(join(resolve(config.data_dir), "files"));
}

export function buildFiles(
  config: Config,
  storage: Storage,
  logger: Logger,
  options: { now?: () => number } = {},
): FilesFeature {
  const now = options.now ?? Date.now;
  const blobs = blobStoreFor(config, storage);
  const files = new FileService({ files: storage.files, blobs, now, maxBytes: config.files.max_bytes });
  const uploads = new UploadService({ uploads: storage.uploads, files, now });
  let sweeping: Promise<void> | undefined;
  const sweep = () => {
    sweeping ??= Promise.all([files.sweepExpired(), uploads.sweepExpired()])
      .then(([removed, expired]) => {
        if (removed + expired > 0) logger.info({ removed, expiredUploads: expired }, "expired files removed");
      })
      .catch((err: unknown) => logger.warn({ err }, "file expiry sweep failed"))
      .finally(() => {
        sweeping = undefined;
      });
  };
  const timer = setInterval(sweep, config.files.sweep_interval_ms);
  timer.unref();
  logger.info({ store: blobs.kind }, "file store ready");
  return {
    files,
    uploads,
    blobs,
    close: async () => {
      clearInterval(timer);
      await sweeping;
    },
  };
}

/**
 * The chunk index vector stores search with, and the start-up notice saying which vector search
 * it does: sqlite-vec's index, or an exact scan of every vector (Postgres without pgvector, a
 * SQLite where sqlite-vec does not load, or `vector_stores.index: exact`).
 */
export function vectorIndexFor(config: Config, storage: Storage, logger: Logger): ChunkIndex {
  const forced = config.vector_stores.index === "exact";
  const reason = forced ? "vector_stores.index is exact" : storage.database.exactVectorSearchReason;
  const index = forced
    ? new KyselyChunkIndex(storage.database.db, storage.database.dialect, { exactOnly: true })
    : storage.chunkIndex;
  if (index.vectorIndex === "exact") {
    logger.warn(
      { vectorSearch: "exact" },
      `Vector stores: ${reason}. Search time grows with a store's size (bench/RESULTS.md: about half a second at 10,000 chunks of 384 dimensions on Postgres, ten at 100,000).`,
    );
  } else logger.info({ vectorSearch: index.vectorIndex }, "vector stores: vector search uses sqlite-vec");
  return index;
}
