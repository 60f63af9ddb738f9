import { type Database, migrate, type OpenDatabaseOptions, openDatabase } from "./database.js";
import { KyselyApiKeyRepository } from "./repositories/api-key-repository.js";
import { KyselyBatchRepository } from "./repositories/batch-repository.js";
import { KyselyChunkIndex } from "./repositories/chunk-index.js";
import { KyselyConversationRepository } from "./repositories/conversation-repository.js";
import { KyselyFileRepository } from "./repositories/file-repository.js";
import { KyselyProjectRepository } from "./repositories/project-repository.js";
import { KyselyResponseRepository } from "./repositories/response-repository.js";
import type { Repositories } from "./repositories/types.js";
import { KyselyUploadRepository } from "./repositories/upload-repository.js";
import { KyselyUsageRepository } from "./repositories/usage-repository.js";
import { KyselyVectorStoreRepository } from "./repositories/vector-store-repository.js";
import type { ChunkIndex, VectorStoreRepository } from "./repositories/vector-store-types.js";

export interface Storage extends Repositories {
  vectorStores: VectorStoreRepository;
  /** Keyword and vector retrieval over vector stores' chunks. */
  chunkIndex: ChunkIndex;
  database: Database;
  close(): Promise<void>;
}

export interface StorageOptions extends OpenDatabaseOptions {
  /** Bytes of stores' vectors vector search may hold in memory (default 512 MiB; 0 = none). */
  vectorCacheBytes?: number;
}

/** Opens the database, applies migrations, and returns the repositories over it. */
export async function openStorage(options: StorageOptions): Promise<Storage> {
  const database = await openDatabase(options);
  try {
    await migrate(database);
  } catch (err) {
    await database.close();
    throw err;
  }
  return {
    database,
    projects: new KyselyProjectRepository(database.db),
    apiKeys: new KyselyApiKeyRepository(database.db),
    usage: new KyselyUsageRepository(database.db),
    responses: new KyselyResponseRepository(database.db),
    conversations: new KyselyConversationRepository(database.db),
    files: new KyselyFileRepository(database.db),
    uploads: new KyselyUploadRepository(database.db),
    batches: new KyselyBatchRepository(database.db, database.dialect),
    vectorStores: new KyselyVectorStoreRepository(database.db, database.dialect, database.pgvector),
    chunkIndex: new KyselyChunkIndex(database.db, database.dialect, {
      exactOnly: database.exactVectorSearchReason !== null,
      pgvector: database.pgvector,
      ...(options.vectorCacheBytes === undefined ? {} : { memoryBudgetBytes: options.vectorCacheBytes }),
    }),
    close: () => database.close(),
  };
}
