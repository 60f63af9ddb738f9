import { type Kysely, sql } from "kysely";
import type { Dialect } from "../database.js";
import {
  backfillPgvector,
  PGVECTOR_MAX_DIMENSIONS,
  type Pgvector,
  pgvectorTableName,
  pgvectorTables,
} from "../pgvector.js";
import type { DatabaseSchema } from "../schema.js";
import { pgvectorSearch } from "./pgvector-search.js";
import { postgresKeywordSearch } from "./postgres-keyword-search.js";
import { StoreVectorCache } from "./store-vector-cache.js";
import { StoreVectorReader } from "./store-vector-reader.js";
import { searchStoreVectors } from "./store-vectors.js";
import { float32Bytes } from "./vector-ingestion-repository.js";
import { vectorTableName, vectorTables } from "./vector-store-rows.js";
import type { ChunkHit, ChunkIndex, StoredChunk, VectorSearchPath } from "./vector-store-types.js";

/** What vector search may hold in memory by default (vector_stores.cache_bytes). */
export const DEFAULT_VECTOR_CACHE_BYTES = 512 * 1024 * 1024;

/**
 * Retrieval over searchable chunks. Keyword: SQLite FTS5 (bm25) or Postgres full-text
 * (ts_rank_cd), any of the terms matching. Vectors: an exact cosine scan of the store's vectors
 * held in memory (StoreVectorCache) where they fit in the budget; else sqlite-vec's vec0 tables
 * (one per vector size, partitioned by store: a search reads only its store's vectors) where
 * loaded, or pgvector's tables (one per vector size, HNSW) once prepareIndex() has filled them;
 * else an exact cosine scan read from the database.
 */
export class KyselyChunkIndex implements ChunkIndex {
  readonly vectorIndex: "sqlite-vec" | "pgvector" | "exact";
  readonly memoryBudgetBytes: number;
  private readonly cache: StoreVectorCache | undefined;
  private readonly reader: StoreVectorReader;
  private readonly pgvector: Pgvector | null;
  /** Set once every searchable chunk is known to be in pgvector's tables (prepareIndex). */
  private pgvectorReady = false;
  private preparing: Promise<number> | undefined;
  private knownTables: Set<string> | undefined;

  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: Dialect,
    options: { exactOnly: boolean; memoryBudgetBytes?: number; pgvector?: Pgvector | null },
  ) {
    this.pgvector = dialect === "postgres" && !options.exactOnly ? (options.pgvector ?? null) : null;
    this.vectorIndex =
      dialect === "sqlite" && !options.exactOnly ? "sqlite-vec" : this.pgvector ? "pgvector" : "exact";
    this.memoryBudgetBytes = options.memoryBudgetBytes ?? DEFAULT_VECTOR_CACHE_BYTES;
    this.cache = this.memoryBudgetBytes > 0 ? new StoreVectorCache(this.memoryBudgetBytes) : undefined;
    this.reader = new StoreVectorReader(db, dialect);
  }

  /** What the in-memory copies hold now (undefined when the budget is 0). */
  memoryStats(): { stores: number; bytes: number; budgetBytes: number } | undefined {
    return this.cache?.stats();
  }

  async keywordSearch(
    storeId: string,
    terms: readonly string[],
    fileIds: readonly string[] | null,
    limit: number,
  ): Promise<ChunkHit[]> {
    if (terms.length === 0 || fileIds?.length === 0) return [];
    if (this.dialect === "sqlite") {
      const match = terms.map((t) => `"${t.replaceAll('"', '""')}"`).join(" OR ");
      const files = fileIds
        ? sql` and rowid in (select id from vector_store_chunks where vector_store_id = ${storeId}
            and file_id in (${sql.join(fileIds)}))`
        : sql``;
      const rows = await sql<{ id: number; rank: number }>`
        select rowid as id, bm25(vector_store_chunks_fts) as rank from vector_store_chunks_fts
        where vector_store_chunks_fts match ${match} and vector_store_id = ${storeId}${files}
        order by rank, rowid limit ${limit}`.execute(this.db);
      // bm25 is lower for better matches.
      return rows.rows.map((r) => ({ chunkId: Number(r.id), score: -Number(r.rank) }));
    }
    // Ranks a bounded set of candidates: a word in most of a large store stays cheap.
    return postgresKeywordSearch(this.db, storeId, terms, fileIds, limit);
  }

  async vectorSearch(
    storeId: string,
    query: Float32Array,
    fileIds: readonly string[] | null,
    limit: number,
    options: { via?: VectorSearchPath } = {},
  ): Promise<ChunkHit[]> {
    if (fileIds?.length === 0 || limit <= 0) return [];
    const via = options.via ?? "auto";
    const indexed = this.vectorIndex === "sqlite-vec" && fileIds === null;
    // pgvector also answers with a file filter: an exact ordering of the store's rows in the database.
    const pgIndexed = this.pgvector !== null && this.pgvectorReady && query.length <= PGVECTOR_MAX_DIMENSIONS;
    if (this.cache && (via === "auto" || via === "memory")) {
      const hits = await this.memorySearch(this.cache, storeId, query, fileIds, limit, {
        // The index answers (in tens of ms) while a cold copy loads; without one the load is the scan.
        answerMeanwhile: via === "auto" && (indexed || pgIndexed),
      });
      if (hits) return hits;
    }
    if (indexed && via !== "scan") return this.indexSearch(storeId, query, limit);
    if (pgIndexed && this.pgvector && via !== "scan") {
      if (!(await this.hasTable(pgvectorTableName(query.length)))) return [];
      return pgvectorSearch(this.db, this.pgvector, storeId, query, fileIds, limit);
    }
    return this.reader.scan(storeId, query, fileIds, limit);
  }

  /**
   * Postgres with pgvector: indexes the searchable chunks its tables lack (written before it was
   * enabled, or by an instance not using it), then lets searches use it; until then they scan.
   * Resolves to how many chunks it indexed (0 without pgvector); a failure leaves searches scanning.
   */
  prepareIndex(): Promise<number> {
    const pgvector = this.pgvector;
    if (!pgvector) return Promise.resolve(0);
    this.preparing ??= backfillPgvector(this.db, pgvector).then(
      (indexed) => {
        this.pgvectorReady = true;
        return indexed;
      },
      (err) => {
        this.preparing = undefined;
        throw err;
      },
    );
    return this.preparing;
  }

  /** Whether an index table exists; tables appear when the first vectors of a size complete, so a miss looks again. */
  private async hasTable(name: string): Promise<boolean> {
    if (this.knownTables?.has(name)) return true;
    const tables = this.dialect === "postgres" ? await pgvectorTables(this.db) : await vectorTables(this.db);
    this.knownTables = new Set(tables);
    return this.knownTables.has(name);
  }

  async chunks(ids: readonly number[]): Promise<StoredChunk[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom("vector_store_chunks")
      .select(["id", "vector_store_id", "file_id", "seq", "text"])
      .where("id", "in", ids as number[])
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      vectorStoreId: r.vector_store_id,
      fileId: r.file_id,
      seq: Number(r.seq),
      text: r.text,
    }));
  }

  private async indexSearch(storeId: string, query: Float32Array, limit: number): Promise<ChunkHit[]> {
    const name = vectorTableName(query.length);
    if (!(await this.hasTable(name))) return [];
    const k = Math.max(1, Math.min(4096, Math.floor(limit)));
    const rows = await sql<{ id: number; distance: number }>`
      select rowid as id, distance from ${sql.table(name)}
      where embedding match ${float32Bytes(query)} and k = ${sql.raw(String(k))} and vector_store_id = ${storeId}
      order by distance`.execute(this.db);
    return rows.rows.map((r) => ({ chunkId: Number(r.id), score: 1 - Number(r.distance) }));
  }

  /**
   * The search over the store's copy in memory at its current version; null when the copy does
   * not fit (or, with `answerMeanwhile`, is not loaded yet: its load starts for later searches).
   */
  private async memorySearch(
    cache: StoreVectorCache,
    storeId: string,
    query: Float32Array,
    fileIds: readonly string[] | null,
    limit: number,
    options: { answerMeanwhile: boolean },
  ): Promise<ChunkHit[] | null> {
    const version = await this.reader.version(storeId);
    if (version === undefined) {
      cache.forget(storeId);
      return [];
    }
    const dims = query.length;
    const held = cache.held(storeId, version, dims);
    if (held) return searchStoreVectors(held, query, fileIds, limit);
    const load = cache.vectors(storeId, version, dims, this.reader.loader(storeId, version, dims));
    if (options.answerMeanwhile) {
      // A failed load is tried again by the next search; this one is answered either way.
      load.catch(() => {});
      return null;
    }
    const vectors = await load;
    return vectors ? searchStoreVectors(vectors, query, fileIds, limit) : null;
  }
}
