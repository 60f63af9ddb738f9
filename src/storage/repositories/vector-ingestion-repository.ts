import { type Kysely, sql, type Transaction } from "kysely";
import type { Dialect } from "../database.js";
import { type ChunkVectorRow, indexChunkVectors, type Pgvector } from "../pgvector.js";
import type { DatabaseSchema } from "../schema.js";
import {
  chunkingColumn,
  dropChunks,
  touchStoreVectors,
  toVectorStore,
  toVectorStoreFile,
  vectorTableName,
} from "./vector-store-rows.js";
import type {
  ChunkingSizes,
  ClaimedIngestion,
  IngestionError,
  NewChunk,
  StoredVectorStore,
  StoredVectorStoreFile,
} from "./vector-store-types.js";

const INSERT_CHUNK = 200;

/**
 * The ingestion side of vector store files: each file row waiting in `in_progress` is a job,
 * leased exactly as batch lines are (owner + lease_until, FOR UPDATE SKIP LOCKED on Postgres), and
 * every write is conditional on still holding the lease. Chunks are unique per (store, file, seq),
 * so a worker that resumes a file another one left half done cannot write a chunk twice.
 */
export class KyselyVectorIngestion {
  constructor(
    protected readonly db: Kysely<DatabaseSchema>,
    protected readonly dialect: Dialect,
    /** Where set (Postgres with pgvector), completed files' vectors go into its index tables. */
    protected readonly pgvector: Pgvector | null = null,
  ) {}

  async claimIngestion(
    owner: string,
    now: number,
    leaseMs: number,
    max: number,
  ): Promise<ClaimedIngestion[]> {
    if (max <= 0) return [];
    const lock = this.dialect === "postgres" ? sql`for update of f skip locked` : sql``;
    const result = await sql<{ vector_store_id: string; file_id: string; attempts: number }>`
      update vector_store_files set lease_owner = ${owner}, lease_until = ${now + leaseMs}, attempts = attempts + 1
      where (vector_store_id, file_id) in (
        select f.vector_store_id, f.file_id from vector_store_files f
        join vector_stores s on s.id = f.vector_store_id
        where f.status = 'in_progress' and (f.lease_until is null or f.lease_until < ${now})
          and s.expired_at is null and (s.expires_at is null or s.expires_at > ${now})
        order by f.created_at, f.file_id
        limit ${max}
        ${lock}
      )
      returning vector_store_id, file_id, attempts`.execute(this.db);
    return result.rows.map((r) => ({
      vectorStoreId: r.vector_store_id,
      fileId: r.file_id,
      attempts: Number(r.attempts),
    }));
  }

  async renewIngestion(owner: string, jobs: readonly ClaimedIngestion[], until: number): Promise<void> {
    for (const job of jobs) {
      await this.db
        .updateTable("vector_store_files")
        .set({ lease_until: until })
        .where("vector_store_id", "=", job.vectorStoreId)
        .where("file_id", "=", job.fileId)
        .where("lease_owner", "=", owner)
        .where("status", "=", "in_progress")
        .execute();
    }
  }

  async releaseIngestion(
    owner: string,
    jobs: readonly ClaimedIngestion[],
    retryAt: number | null,
  ): Promise<void> {
    for (const job of jobs) {
      await this.db
        .updateTable("vector_store_files")
        .set({ lease_owner: null, lease_until: retryAt })
        .where("vector_store_id", "=", job.vectorStoreId)
        .where("file_id", "=", job.fileId)
        .where("lease_owner", "=", owner)
        .where("status", "=", "in_progress")
        .execute();
    }
  }

  async ingestionTarget(
    storeId: string,
    fileId: string,
  ): Promise<{ store: StoredVectorStore; file: StoredVectorStoreFile } | undefined> {
    const file = await this.db
      .selectFrom("vector_store_files")
      .selectAll()
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .executeTakeFirst();
    if (!file) return undefined;
    const store = await this.db
      .selectFrom("vector_stores")
      .selectAll()
      .where("id", "=", storeId)
      .executeTakeFirst();
    return store ? { store: toVectorStore(store), file: toVectorStoreFile(file) } : undefined;
  }

  async chunkCount(storeId: string, fileId: string): Promise<number> {
    const row = await this.db
      .selectFrom("vector_store_chunks")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async addChunks(
    owner: string,
    storeId: string,
    fileId: string,
    chunks: readonly NewChunk[],
  ): Promise<boolean> {
    // Chunks are written unsearchable: the store's searchable set (and its version) stays as it is.
    return this.whileHeld(owner, storeId, fileId, { touchesSearchable: false }, async (trx, projectId) => {
      for (let i = 0; i < chunks.length; i += INSERT_CHUNK) {
        await trx
          .insertInto("vector_store_chunks")
          .values(
            chunks.slice(i, i + INSERT_CHUNK).map((chunk) => ({
              vector_store_id: storeId,
              file_id: fileId,
              project_id: projectId,
              seq: chunk.seq,
              text: chunk.text,
              tokens: chunk.tokens,
              embedding: float32Bytes(chunk.embedding),
              searchable: 0,
            })),
          )
          .onConflict((oc) => oc.columns(["vector_store_id", "file_id", "seq"]).doNothing())
          .execute();
      }
    });
  }

  async completeIngestion(
    owner: string,
    storeId: string,
    fileId: string,
    pages: readonly string[],
  ): Promise<boolean> {
    return this.whileHeld(owner, storeId, fileId, { touchesSearchable: true }, async (trx, projectId) => {
      await trx
        .deleteFrom("vector_store_file_pages")
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .execute();
      for (let i = 0; i < pages.length; i += INSERT_CHUNK) {
        await trx
          .insertInto("vector_store_file_pages")
          .values(
            pages.slice(i, i + INSERT_CHUNK).map((text, j) => ({
              vector_store_id: storeId,
              file_id: fileId,
              project_id: projectId,
              seq: i + j,
              text,
            })),
          )
          .execute();
      }
      if (this.dialect === "sqlite") await this.indexForSqlite(trx, storeId, fileId);
      else if (this.pgvector) await this.indexForPgvector(trx, this.pgvector, storeId, fileId);
      await trx
        .updateTable("vector_store_chunks")
        .set({ searchable: 1 })
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .execute();
      const bytes =
        this.dialect === "postgres"
          ? sql<number>`coalesce(sum(octet_length(text) + octet_length(embedding)), 0)`
          : sql<number>`coalesce(sum(length(cast(text as blob)) + length(embedding)), 0)`;
      const usage = await trx
        .selectFrom("vector_store_chunks")
        .select(bytes.as("bytes"))
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .executeTakeFirst();
      await trx
        .updateTable("vector_store_files")
        .set({
          status: "completed",
          usage_bytes: Number(usage?.bytes ?? 0),
          lease_until: null,
          error_code: null,
          error_message: null,
        })
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .execute();
    });
  }

  async setChunking(
    owner: string,
    storeId: string,
    fileId: string,
    chunking: ChunkingSizes,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable("vector_store_files")
      .set({ chunking: chunkingColumn(chunking) })
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .where("lease_owner", "=", owner)
      .where("status", "=", "in_progress")
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async failIngestion(
    owner: string,
    storeId: string,
    fileId: string,
    error: IngestionError,
  ): Promise<boolean> {
    // Its chunks were never searchable, but dropChunks raises the version: the store's row first.
    return this.whileHeld(owner, storeId, fileId, { touchesSearchable: true }, async (trx) => {
      await dropChunks(trx, this.dialect, { storeId, fileIds: [fileId] });
      await trx
        .updateTable("vector_store_files")
        .set({
          status: "failed",
          error_code: error.code,
          error_message: error.message.slice(0, 1000),
          usage_bytes: 0,
          lease_until: null,
        })
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .execute();
    });
  }

  /** The file's chunks into the keyword index and the sqlite-vec table of their size (created on first use). */
  private async indexForSqlite(
    trx: Transaction<DatabaseSchema>,
    storeId: string,
    fileId: string,
  ): Promise<void> {
    const scope = sql`vector_store_id = ${storeId} and file_id = ${fileId} and searchable = 0`;
    await sql`insert into vector_store_chunks_fts (rowid, text, vector_store_id)
      select id, text, vector_store_id from vector_store_chunks where ${scope}`.execute(trx);
    const loaded = await sql<{
      n: number;
    }>`select count(*) as n from pragma_function_list where name = 'vec_version'`.execute(trx);
    if (Number(loaded.rows[0]?.n ?? 0) === 0) return;
    const sizes = await sql<{ dims: number }>`select distinct length(embedding) / 4 as dims
      from vector_store_chunks where ${scope}`.execute(trx);
    for (const { dims } of sizes.rows) {
      const table = sql.table(vectorTableName(Number(dims)));
      await sql`create virtual table if not exists ${table} using vec0(
        vector_store_id text partition key, embedding float[${sql.raw(String(Number(dims)))}] distance_metric=cosine)`.execute(
        trx,
      );
      await sql`insert into ${table} (rowid, vector_store_id, embedding)
        select id, vector_store_id, embedding from vector_store_chunks
        where ${scope} and length(embedding) / 4 = ${Number(dims)}`.execute(trx);
    }
  }

  /**
   * The file's vectors into pgvector's index table of their size (created on first use), in the
   * transaction that makes them searchable; they leave it with their chunks (on delete cascade).
   */
  private async indexForPgvector(
    trx: Transaction<DatabaseSchema>,
    pgvector: Pgvector,
    storeId: string,
    fileId: string,
  ): Promise<void> {
    const rows = await trx
      .selectFrom("vector_store_chunks")
      .select(["id", "embedding"])
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .where("searchable", "=", 0)
      .execute();
    await indexChunkVectors(trx, pgvector, rows as ChunkVectorRow[]);
  }

  /**
   * Runs `write` in a transaction that first checks (and on Postgres locks) the file row: still
   * in_progress and leased by `owner`. False, with nothing written, when it is not. A write that
   * changes the store's searchable chunks raises its vectors_version first (the store's row is
   * locked before the file's, as every writer does).
   */
  private async whileHeld(
    owner: string,
    storeId: string,
    fileId: string,
    options: { touchesSearchable: boolean },
    write: (trx: Transaction<DatabaseSchema>, projectId: string) => Promise<void>,
  ): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        if (options.touchesSearchable) await touchStoreVectors(trx, storeId);
        // A no-op update takes the row's lock (Postgres) and tells whether we still hold it.
        const held = await trx
          .updateTable("vector_store_files")
          .set({ lease_owner: owner })
          .where("vector_store_id", "=", storeId)
          .where("file_id", "=", fileId)
          .where("lease_owner", "=", owner)
          .where("status", "=", "in_progress")
          .returning("project_id")
          .executeTakeFirst();
        if (!held) throw new NotHeld();
        await write(trx, held.project_id);
        return true;
      });
    } catch (err) {
      if (err instanceof NotHeld) return false;
      throw err;
    }
  }
}

/** Rolls a transaction back when the lease it needed is gone. */
class NotHeld extends Error {}

/** Little-endian float32 bytes, whatever this host's byte order. */
export function float32Bytes(vector: Float32Array): Buffer {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] as number, i * 4);
  return bytes;
}

export function float32FromBytes(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}
