import { join, resolve } from "node:path";
import type { Logger } from "pino";
import { FileService } from "../api/files/service.js";
import { UploadService } from "../api/uploads/service.js";
import { sweepExpiredVectorStores } from "../api/vector-stores/expiry.js";
import type { Config } from "../config/schema.js";
import type { BlobStore } from "../storage/blobs/blob-store.js";
import { DatabaseBlobStore } from "../storage/blobs/database-blob-store.js";
import { FilesystemBlobStore } from "../storage/blobs/filesystem-blob-store.js";
import { KyselyChunkIndex } from "../storage/repositories/chunk-index.js";
import type { ChunkIndex } from "../storage/repositories/vector-store-types.js";
import type { Storage } from "../storage/storage.js";

/**
 * Files and their housekeeping, built over the access layer's storage. The periodic sweep also
 * expires vector stores (their chunks are the bulk of what the database holds for files).
 */
export interface FilesFeature {
  files: FileService;
  uploads: UploadService;
  blobs: BlobStore;
  /** The start-up sweep of what a crash left in the blob store (tests wait for it). */
  startupSweep: Promise<void>;
  /**
   * One round of the periodic housekeeping now (expired files, uploads and vector stores), after
   * the one under way if any; the timer runs the same every `files.sweep_interval_ms`.
   */
  sweep(): Promise<void>;
  /** Stops the sweeper. */
  close(): Promise<void>;
}

/**
 * A blob written (or a temporary file touched) this long ago with nothing referring to it is a
 * crash's leftover, not a write in progress: no write lasts that long (a request is cut after
 * request_timeout_ms, at most an hour too; batch output is written at database speed).
 */
const DEBRIS_AGE_MS = 3_600_000;
/** The debris sweep walks the whole store, so it runs at start-up and then hourly, not every sweep. */
const DEBRIS_SWEEP_EVERY_MS = 3_600_000;

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
  // Debris is judged by the wall clock (how old the bytes really are), never an injected one.
  const startedAt = Date.now();
  // On SQLite this instance is the data's only user: at start-up, everything unfinished or
  // unreferenced from before it started is a previous run's leftover, whatever its age.
  const soleUser = storage.database.dialect === "sqlite";
  const sweepDebris = async (before: number) => {
    const leftoverUploads = await uploads.sweepLeftoverParts();
    const { unfinished, orphaned } = await files.sweepDebris(before);
    if (leftoverUploads + unfinished + orphaned > 0) {
      logger.info(
        { leftoverUploads, unfinishedWrites: unfinished, unreferencedBlobs: orphaned },
        "left-overs of an earlier stop removed from the file store",
      );
    }
  };
  // One sweep at a time; a round that finds one still running is skipped.
  let sweeping: Promise<void> | undefined;
  const runSweep = (work: () => Promise<void>): Promise<void> => {
    sweeping ??= work()
      .catch((err: unknown) => logger.warn({ err }, "file store sweep failed"))
      .finally(() => {
        sweeping = undefined;
      });
    return sweeping;
  };
  const startupSweep = runSweep(() => sweepDebris(soleUser ? startedAt : startedAt - DEBRIS_AGE_MS));
  let lastDebrisSweep = startedAt;
  const sweepRound = () =>
    runSweep(async () => {
      const [removed, expired, stores] = await Promise.all([
        files.sweepExpired(),
        uploads.sweepExpired(),
        sweepExpiredVectorStores(storage.vectorStores, now, () => storage.database.reclaimSpace()),
      ]);
      if (removed + expired > 0) logger.info({ removed, expiredUploads: expired }, "expired files removed");
      if (stores > 0) logger.info({ vectorStores: stores }, "expired vector stores' chunks removed");
      if (Date.now() - lastDebrisSweep >= DEBRIS_SWEEP_EVERY_MS) {
        lastDebrisSweep = Date.now();
        await sweepDebris(lastDebrisSweep - DEBRIS_AGE_MS);
      }
    });
  const timer = setInterval(() => void sweepRound(), config.files.sweep_interval_ms);
  timer.unref();
  logger.info({ store: blobs.kind }, "file store ready");
  return {
    files,
    uploads,
    blobs,
    startupSweep,
    sweep: async () => {
      await sweeping;
      await sweepRound();
    },
    close: async () => {
      clearInterval(timer);
      await sweeping;
    },
  };
}

/**
 * The chunk index vector stores search with, and the start-up notice saying how it searches
 * vectors: exactly over stores' copies in memory (within vector_stores.cache_bytes), and for a store
 * that does not fit, sqlite-vec's index, pgvector's (Postgres where the extension is enabled), or
 * an exact scan read from the database (Postgres without pgvector; a SQLite where sqlite-vec does
 * not load; `vector_stores.index: exact`). pgvector's index is readied (backfilled) in the background.
 */
export function vectorIndexFor(config: Config, storage: Storage, logger: Logger): ChunkIndex {
  const { index: setting, cache_bytes: budget } = config.vector_stores;
  const forced = setting === "exact";
  const reason = forced ? "vector_stores.index is exact" : storage.database.exactVectorSearchReason;
  const index = forced
    ? new KyselyChunkIndex(storage.database.db, storage.database.dialect, {
        exactOnly: true,
        memoryBudgetBytes: budget,
      })
    : storage.chunkIndex;
  const memory =
    budget > 0
      ? `each store's vectors are searched in a copy in memory (vector_stores.cache_bytes: ${mib(budget)} across stores, loaded once per change to a store)`
      : "vector_stores.cache_bytes is 0: no store's vectors are kept in memory";
  if (index.vectorIndex === "exact") {
    logger.warn(
      { vectorSearch: "exact", cacheBytes: budget },
      `Vector stores: ${reason}. Vector search is exact: ${memory}; a store that does not fit is read from the database for every search (bench/RESULTS.md: 1–2 s at 100,000 chunks of 384 dimensions on Postgres).`,
    );
  } else if (index.vectorIndex === "pgvector") {
    const pgvector = storage.database.pgvector;
    logger.info(
      { vectorSearch: "pgvector", pgvectorVersion: pgvector?.version, cacheBytes: budget },
      `vector stores: vector search is exact: ${memory}; pgvector ${pgvector?.version ?? ""} (HNSW, cosine${pgvector?.iterativeScan ? ", iterative scans" : "; before 0.8 no iterative scans, so each store's rows are ordered exactly in the database"}) answers for a store that does not fit, and while a copy loads`,
    );
    const started = Date.now();
    index.prepareIndex?.().then(
      (indexed) => {
        if (indexed > 0)
          logger.info(
            { pgvectorBackfill: indexed, ms: Date.now() - started },
            `vector stores: pgvector now indexes ${indexed} chunks written before it was enabled`,
          );
      },
      (err: Error) =>
        logger.warn(
          { err: err.message },
          "vector stores: pgvector's index could not be filled with the existing chunks; searches that do not fit in memory scan the database until a restart",
        ),
    );
  } else {
    logger.info(
      { vectorSearch: index.vectorIndex, cacheBytes: budget },
      `vector stores: vector search is exact: ${memory}; sqlite-vec answers for a store that does not fit, and while a copy loads`,
    );
  }
  return index;
}

function mib(bytes: number): string {
  return `${Math.round((bytes / 1024 / 1024) * 10) / 10} MiB`;
}
