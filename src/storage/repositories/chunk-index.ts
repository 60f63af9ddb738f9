import { endianness } from "node:os";
import { type Kysely, sql } from "kysely";
import type { Dialect } from "../database.js";
import type { DatabaseSchema } from "../schema.js";
import { float32Bytes, float32FromBytes } from "./vector-ingestion-repository.js";
import { vectorTableName, vectorTables } from "./vector-store-rows.js";
import type { ChunkHit, ChunkIndex, StoredChunk } from "./vector-store-types.js";

/** Rows read per round of an exact scan: memory stays bounded whatever the store's size. */
const SCAN_PAGE = 4096;

/**
 * Retrieval over searchable chunks. Keyword: SQLite FTS5 (bm25) or Postgres full-text
 * (ts_rank_cd), any of the terms matching. Vectors: sqlite-vec's vec0 tables (one per vector size,
 * partitioned by store) where loaded, else an exact cosine scan of the store's vectors.
 */
export class KyselyChunkIndex implements ChunkIndex {
  readonly vectorIndex: "sqlite-vec" | "exact";
  private knownTables: Set<string> | undefined;

  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: Dialect,
    options: { exactOnly: boolean },
  ) {
    this.vectorIndex = dialect === "sqlite" && !options.exactOnly ? "sqlite-vec" : "exact";
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
    const query = terms.map((t) => `'${t.replaceAll("'", "''").replaceAll("\\", "")}'`).join(" | ");
    const files = fileIds ? sql` and file_id in (${sql.join(fileIds)})` : sql``;
    const rows = await sql<{ id: number; score: number }>`
      select id, ts_rank_cd(text_search, q) as score
      from vector_store_chunks, to_tsquery('english', ${query}) q
      where vector_store_id = ${storeId} and searchable = 1${files} and text_search @@ q
      order by score desc, id limit ${limit}`.execute(this.db);
    return rows.rows.map((r) => ({ chunkId: Number(r.id), score: Number(r.score) }));
  }

  async vectorSearch(
    storeId: string,
    query: Float32Array,
    fileIds: readonly string[] | null,
    limit: number,
    options: { exact?: boolean } = {},
  ): Promise<ChunkHit[]> {
    if (fileIds?.length === 0 || limit <= 0) return [];
    if (this.vectorIndex === "sqlite-vec" && !options.exact && fileIds === null)
      return this.indexSearch(storeId, query, limit);
    return this.exactSearch(storeId, query, fileIds, limit);
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

  /** Cosine similarity against every searchable vector of the store (of `fileIds`), page by page. */
  private async exactSearch(
    storeId: string,
    query: Float32Array,
    fileIds: readonly string[] | null,
    limit: number,
  ): Promise<ChunkHit[]> {
    let queryNorm = 0;
    for (const x of query) queryNorm += x * x;
    queryNorm = Math.sqrt(queryNorm) || 1;
    const best = new TopK(limit);
    // Paged along the (store, file, seq) unique index: a range read per page. (Paging by id made
    // both databases sort the whole store again for every page: quadratic in the store's size.)
    let after: { fileId: string; seq: number } | undefined;
    for (;;) {
      let select = this.db
        .selectFrom("vector_store_chunks")
        .select(["id", "file_id", "seq", "embedding"])
        .where("vector_store_id", "=", storeId)
        .where("searchable", "=", 1);
      // A row-value comparison: both planners read it as one range of the index (an OR of two
      // conditions sent Postgres back to sorting the store for every page).
      if (after) select = select.where(sql<boolean>`(file_id, seq) > (${after.fileId}, ${after.seq})`);
      if (fileIds) select = select.where("file_id", "in", fileIds as string[]);
      const rows = await select.orderBy("file_id").orderBy("seq").limit(SCAN_PAGE).execute();
      for (const row of rows) {
        const bytes = row.embedding as Uint8Array;
        if (bytes.byteLength !== query.length * 4) continue;
        const vector = floats(bytes);
        let dot = 0;
        let norm = 0;
        for (let i = 0; i < query.length; i++) {
          const x = vector[i] as number;
          dot += x * (query[i] as number);
          norm += x * x;
        }
        best.offer(Number(row.id), dot / ((Math.sqrt(norm) || 1) * queryNorm));
      }
      const last = rows[rows.length - 1];
      if (rows.length < SCAN_PAGE || !last) break;
      after = { fileId: last.file_id, seq: Number(last.seq) };
    }
    return best.sorted();
  }
}

const LITTLE_ENDIAN = endianness() === "LE";

/** Stored little-endian float32 bytes as floats: a view where alignment and byte order allow, else decoded. */
function floats(bytes: Uint8Array): Float32Array {
  if (LITTLE_ENDIAN) {
    if (bytes.byteOffset % 4 === 0)
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    return new Float32Array(bytes.slice().buffer);
  }
  return float32FromBytes(bytes);
}

/** The k best hits seen so far (a bounded sorted list: k is at most a few hundred). */
class TopK {
  private readonly hits: ChunkHit[] = [];

  constructor(private readonly k: number) {}

  offer(chunkId: number, score: number): void {
    const hits = this.hits;
    if (hits.length === this.k && score <= (hits[hits.length - 1] as ChunkHit).score) return;
    let i = hits.length;
    while (i > 0 && (hits[i - 1] as ChunkHit).score < score) i--;
    hits.splice(i, 0, { chunkId, score });
    if (hits.length > this.k) hits.pop();
  }

  sorted(): ChunkHit[] {
    return this.hits;
  }
}
