import { type Kysely, sql } from "kysely";
import type { DatabaseSchema } from "../schema.js";
import type { ChunkHit } from "./vector-store-types.js";

/**
 * How many matching chunks one keyword search ranks on Postgres at most, shared among its terms.
 * Ranking a chunk reads its tsvector (a few KB, out of line), so a word found in most of a large
 * store cost a read of nearly every chunk (~0.6 s at 100k chunks, bench/RESULTS.md).
 */
export const KEYWORD_RANK_BUDGET = 2000;

/**
 * Postgres full-text search of one store: chunks matching any of the terms, best ts_rank_cd first.
 *
 * Each term finds its candidates through the GIN index alone (an exact match needs no recheck, so
 * no tsvector is read), at most `perTerm` of them, and only the candidates are ranked, against the
 * whole query. A term matching no more than `perTerm` chunks of the store brings all of them, so
 * the ranking is exact whenever every term does; a rare term is never crowded out by a common one.
 * Only a term found in more chunks than that (one that tells chunks apart poorly: it is in a
 * large share of the store) contributes a subset of its matches: the first the scan meets.
 */
export async function postgresKeywordSearch(
  db: Kysely<DatabaseSchema>,
  storeId: string,
  terms: readonly string[],
  fileIds: readonly string[] | null,
  limit: number,
  budget = KEYWORD_RANK_BUDGET,
): Promise<ChunkHit[]> {
  const quoted = terms.map((t) => `'${t.replaceAll("'", "''").replaceAll("\\", "")}'`);
  const whole = quoted.join(" | ");
  const perTerm = Math.max(limit, Math.ceil(budget / quoted.length));
  const files = fileIds ? sql` and file_id in (${sql.join(fileIds)})` : sql``;
  const candidates = quoted.map(
    (term) => sql`(select id, ts_rank_cd(text_search, to_tsquery('english', ${whole})) as score
      from vector_store_chunks
      where vector_store_id = ${storeId} and searchable = 1${files}
        and text_search @@ to_tsquery('english', ${term})
      limit ${perTerm})`,
  );
  return db.transaction().execute(async (trx) => {
    // The planner counts a tsvector match as cheap and, under a LIMIT, would rather read the
    // table in order testing each row's tsvector: for a common word that is what we avoid.
    await sql`set local enable_seqscan = off`.execute(trx);
    const rows = await sql<{ id: number; score: number }>`
      select id, max(score) as score from (${sql.join(candidates, sql` union all `)}) c
      group by id order by score desc, id limit ${limit}`.execute(trx);
    return rows.rows.map((r) => ({ chunkId: Number(r.id), score: Number(r.score) }));
  });
}
