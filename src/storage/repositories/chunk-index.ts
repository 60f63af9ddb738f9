import { type Kysely, sql } from "kysely";
import type { Dialect } from "../database.js";
import type { DatabaseSchema } from "../schema.js";
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
 * loaded; else an exact cosine scan read from the database.
 */
export class KyselyChunkIndex implements ChunkIndex {
  readonly vectorIndex: "sqlite-vec" | "exact";
  readonly memoryBudgetBytes: number;
  private readonly cache: StoreVectorCache | undefined;
  private readonly reader: StoreVectorReader;
  private knownTables: Set<string> | undefined;

  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: Dialect,
    options: { exactOnly: boolean; memoryBudgetBytes?: number },
  ) {
    this.vectorIndex = dialect === "sqlite" && !options.exactOnly ? "sqlite-vec" : "exact";
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
    if (this.cache && (via === "auto" || via === "memory")) {
      const hits = await this.memorySearch(this.cache, storeId, query, fileIds, limit, {
        // sqlite-vec answers (in tens of ms) while a cold copy loads; without it the load is the scan.
        answerMeanwhile: via === "auto" && indexed,
      });
      if (hits) return hits;
    }
    if (indexed && via !== "scan") return this.indexSearch(storeId, query, limit);
    return this.reader.scan(storeId, query, fileIds, limit);
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
    if (!this.knownTables?.has(name)) {
      // Tables appear when the first file with vectors of a size completes; look again on a miss.
      this.knownTables = new Set(await vectorTables(this.db));
      if (!this.knownTables.has(name)) return [];
    }
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
