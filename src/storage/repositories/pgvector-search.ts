import { type Kysely, sql } from "kysely";
import {
  cosineDistance,
  floatsText,
  HNSW_MAX_DIMENSIONS,
  type Pgvector,
  pgvectorTableName,
  vectorType,
} from "../pgvector.js";
import type { DatabaseSchema } from "../schema.js";
import type { ChunkHit } from "./vector-store-types.js";

/** Most rows one search asks for (as sqlite-vec's k). */
const MAX_K = 4096;
/**
 * Candidates the HNSW walk keeps (hnsw.ef_search; pgvector's default is 40). On random unit
 * vectors of 384 floats (the hardest case: no clusters) recall@10 at 10,000 chunks was 0.34 at 40,
 * 0.64 at 100, 0.84 at 200 and 1.0 at 400, for 3.6 / 6.2 / 8.1 / 12 ms on PGlite (bench/RESULTS.md).
 */
const EF_SEARCH = 400;
/** pgvector's upper bound for hnsw.ef_search. */
const MAX_EF_SEARCH = 1000;

/**
 * The `limit` chunks of the store (of `fileIds`) nearest to `query` in pgvector's index table of
 * its size, scored as the exact scan scores them (cosine in doubles over the stored floats, equal
 * scores by lower chunk id), so they fuse with keyword ranks as any other path's would.
 *
 * With pgvector 0.8 or later and no file filter, the HNSW index is walked with iterative scans:
 * it goes on past ef_search until enough of the store's own rows passed the filter, instead of
 * returning what was left of ef_search rows after dropping other stores'. Without them (older
 * pgvector), with a file filter, or when the walk came back short, the store's rows are ordered by
 * distance exactly in the database (no index: still far cheaper than reading them all into Node).
 */
export async function pgvectorSearch(
  db: Kysely<DatabaseSchema>,
  pgvector: Pgvector,
  storeId: string,
  query: Float32Array,
  fileIds: readonly string[] | null,
  limit: number,
): Promise<ChunkHit[]> {
  const text = floatsText(query);
  if (text === null) return [];
  const dims = query.length;
  const k = Math.max(1, Math.min(MAX_K, Math.floor(limit)));
  const table = sql.table(pgvectorTableName(dims));
  const q = sql`${text}::${vectorType(pgvector, dims)}`;
  const distance = cosineDistance(pgvector);
  const files = fileIds ? sql` and file_id in (${sql.join(fileIds)})` : sql``;
  let rows: VectorRow[] | undefined;
  if (fileIds === null && pgvector.iterativeScan && dims <= HNSW_MAX_DIMENSIONS) {
    rows = await db.transaction().execute(async (trx) => {
      // relaxed_order: the walk may hand rows back slightly out of order; they are scored and sorted below.
      await sql`set local hnsw.iterative_scan = relaxed_order`.execute(trx);
      await sql
        .raw(`set local hnsw.ef_search = ${Math.min(MAX_EF_SEARCH, Math.max(EF_SEARCH, 2 * k))}`)
        .execute(trx);
      const result = await sql<VectorRow>`select id, embedding::real[] as embedding from ${table}
        where vector_store_id = ${storeId}
        order by embedding ${distance} ${q} limit ${k}`.execute(trx);
      return result.rows;
    });
    // Short: the store has fewer rows than k, or the walk gave up (hnsw.max_scan_tuples) first.
    if (rows.length < k) rows = undefined;
  }
  if (rows === undefined) {
    // "+ 0": an expression the HNSW index cannot order by, so the planner sorts the store's rows exactly.
    const result = await sql<VectorRow>`select id, embedding::real[] as embedding from ${table}
      where vector_store_id = ${storeId}${files}
      order by (embedding ${distance} ${q}) + 0, id limit ${k}`.execute(db);
    rows = result.rows;
  }
  return rescore(rows, query).slice(0, limit);
}

interface VectorRow {
  id: number | string;
  embedding: (number | string)[];
}

/** The rows' cosine similarity to `query`, exactly as the database scan computes it, best first. */
function rescore(rows: readonly VectorRow[], query: Float32Array): ChunkHit[] {
  let queryNorm = 0;
  for (const x of query) queryNorm += x * x;
  queryNorm = Math.sqrt(queryNorm) || 1;
  const hits = rows.map((row) => {
    let dot = 0;
    let norm = 0;
    for (let i = 0; i < query.length; i++) {
      // The stored float32 (its decimal text reads back to the nearest double first).
      const x = Math.fround(Number(row.embedding[i]));
      dot += x * (query[i] as number);
      norm += x * x;
    }
    return { chunkId: Number(row.id), score: dot / ((Math.sqrt(norm) || 1) * queryNorm) };
  });
  return hits.sort((a, b) => b.score - a.score || a.chunkId - b.chunkId);
}
