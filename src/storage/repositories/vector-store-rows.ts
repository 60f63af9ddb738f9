import { type Insertable, type Kysely, type Selectable, sql, type Transaction } from "kysely";
import type { Dialect } from "../database.js";
import type { DatabaseSchema, VectorStoreFilesTable, VectorStoresTable } from "../schema.js";
import type { BatchCaller } from "./types.js";
import type {
  ChunkingSizes,
  FileCounts,
  IngestionError,
  NewVectorStore,
  StoredVectorStore,
  StoredVectorStoreFile,
  VectorStoreFileStatus,
} from "./vector-store-types.js";

/** Rows ↔ vector store types, and the index upkeep every write path shares. */

export function toVectorStore(row: Selectable<VectorStoresTable>): StoredVectorStore {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    description: row.description,
    metadata: row.metadata === null ? null : JSON.parse(row.metadata),
    embeddingModel: row.embedding_model,
    expiresAfterDays: row.expires_after_days === null ? null : Number(row.expires_after_days),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    lastActiveAt: Number(row.last_active_at),
    createdAt: Number(row.created_at),
    expiredAt: row.expired_at === null ? null : Number(row.expired_at),
  };
}

export function vectorStoreRow(store: NewVectorStore): Insertable<VectorStoresTable> {
  return {
    id: store.id,
    project_id: store.projectId,
    name: store.name,
    description: store.description,
    metadata: store.metadata === null ? null : JSON.stringify(store.metadata),
    embedding_model: store.embeddingModel,
    expires_after_days: store.expiresAfterDays,
    expires_at: store.expiresAt,
    last_active_at: store.lastActiveAt,
    created_at: store.createdAt,
    expired_at: null,
    purge_until: null,
    purged_at: null,
  };
}

export function toVectorStoreFile(row: Selectable<VectorStoreFilesTable>): StoredVectorStoreFile {
  const chunking = JSON.parse(row.chunking) as { max: number; overlap: number; auto?: boolean };
  return {
    vectorStoreId: row.vector_store_id,
    fileId: row.file_id,
    projectId: row.project_id,
    batchId: row.batch_id,
    filename: row.filename,
    status: row.status as VectorStoreFileStatus,
    lastError:
      row.error_code === null
        ? null
        : { code: row.error_code as IngestionError["code"], message: row.error_message ?? "" },
    chunking: {
      maxChunkSizeTokens: chunking.max,
      chunkOverlapTokens: chunking.overlap,
      // Rows written before `auto` was recorded: 800/400 was what auto meant.
      auto: chunking.auto ?? (chunking.max === 800 && chunking.overlap === 400),
    },
    attributes: row.attributes === null ? null : JSON.parse(row.attributes),
    usageBytes: Number(row.usage_bytes),
    caller: JSON.parse(row.caller) as BatchCaller,
    createdAt: Number(row.created_at),
  };
}

/** The chunking column: the sizes, and whether they were asked for as `auto`. */
export function chunkingColumn(chunking: ChunkingSizes): string {
  return JSON.stringify({
    max: chunking.maxChunkSizeTokens,
    overlap: chunking.chunkOverlapTokens,
    auto: chunking.auto === true,
  });
}

export function vectorStoreFileRow(file: StoredVectorStoreFile): VectorStoreFilesTable {
  return {
    vector_store_id: file.vectorStoreId,
    file_id: file.fileId,
    project_id: file.projectId,
    batch_id: file.batchId,
    filename: file.filename,
    status: file.status,
    error_code: file.lastError?.code ?? null,
    error_message: file.lastError?.message ?? null,
    chunking: chunkingColumn(file.chunking),
    attributes: file.attributes === null ? null : JSON.stringify(file.attributes),
    usage_bytes: file.usageBytes,
    caller: JSON.stringify(file.caller),
    created_at: file.createdAt,
    lease_owner: null,
    lease_until: null,
    attempts: 0,
  };
}

/** File counts from `status, count` rows. */
export function countsOf(rows: readonly { status: string; n: number | string | bigint }[]): FileCounts {
  const counts: FileCounts = { inProgress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 };
  for (const row of rows) {
    const n = Number(row.n);
    counts.total += n;
    if (row.status === "in_progress") counts.inProgress += n;
    else if (row.status === "completed") counts.completed += n;
    else if (row.status === "failed") counts.failed += n;
    else if (row.status === "cancelled") counts.cancelled += n;
  }
  return counts;
}

/** The sqlite-vec table holding vectors of `dimensions` floats (one per size: vec0 tables have a fixed one). */
export function vectorTableName(dimensions: number): string {
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > 65_536)
    throw new Error(`bad vector size ${dimensions}`);
  return `vector_store_vec_${dimensions}`;
}

export async function vectorTables(
  db: Kysely<DatabaseSchema> | Transaction<DatabaseSchema>,
): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from sqlite_master
    where type = 'table' and name glob 'vector_store_vec_[0-9]*' and sql like 'create virtual table%'`.execute(
    db,
  );
  return rows.rows.map((r) => r.name);
}

type Scope = { storeId: string; fileIds?: readonly string[] };

/**
 * Raises the store's vectors_version: call it in the transaction that changes which chunks of the
 * store are searchable, so in-memory copies of its vectors (on any instance) are reloaded. On
 * Postgres it locks the store's row: writers take it before any file row (as deleting the store
 * does), so two writers never wait on each other crosswise. With `projectId`, only that project's
 * store is touched (a call naming another project's store writes nothing).
 */
export async function touchStoreVectors(
  trx: Transaction<DatabaseSchema>,
  storeId: string,
  projectId?: string,
): Promise<void> {
  let update = trx
    .updateTable("vector_stores")
    .set((eb) => ({ vectors_version: eb("vectors_version", "+", 1) }))
    .where("id", "=", storeId);
  if (projectId !== undefined) update = update.where("project_id", "=", projectId);
  await update.execute();
}

/**
 * Removes chunks (all of a store, or of some of its files) with their index rows and stored text.
 * On SQLite the keyword and vector indexes are tables of their own and are cleaned here; pgvector's
 * tables (Postgres) lose their rows with the chunks (on delete cascade). The store's
 * vectors_version is raised (on Postgres, callers touch it before locking any file row).
 */
export async function dropChunks(
  trx: Transaction<DatabaseSchema>,
  dialect: Dialect,
  scope: Scope,
): Promise<void> {
  if (scope.fileIds?.length === 0) return;
  await touchStoreVectors(trx, scope.storeId);
  if (dialect === "sqlite") {
    const ids = sql`select id from vector_store_chunks where vector_store_id = ${scope.storeId} and searchable = 1${
      scope.fileIds ? sql` and file_id in (${sql.join(scope.fileIds)})` : sql``
    }`;
    await sql`delete from vector_store_chunks_fts where rowid in (${ids})`.execute(trx);
    for (const table of await vectorTables(trx))
      await sql`delete from ${sql.table(table)} where rowid in (${ids})`.execute(trx);
  }
  for (const table of ["vector_store_chunks", "vector_store_file_pages"] as const) {
    let del = trx.deleteFrom(table).where("vector_store_id", "=", scope.storeId);
    if (scope.fileIds) del = del.where("file_id", "in", scope.fileIds);
    await del.execute();
  }
}
