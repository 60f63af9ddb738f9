import { type Kysely, type RawBuilder, sql, type Transaction } from "kysely";
import type { DatabaseSchema } from "./schema.js";

/** pgvector as this Postgres database has it enabled. */
export interface Pgvector {
  /** The schema holding its type and operators (named in every statement: search_path may lack it). */
  schema: string;
  /** Its version, e.g. "0.8.0". */
  version: string;
  /** Whether HNSW scans can go on past ef_search until enough rows pass a filter (0.8.0 and later). */
  iterativeScan: boolean;
}

/** What start-up found: pgvector enabled, or why not (null `pgvector`, with the reason). */
export interface PgvectorState {
  pgvector: Pgvector | null;
  /** Why vector search has no index on this server; null when pgvector is used. */
  reason: string | null;
}

type Db = Kysely<DatabaseSchema> | Transaction<DatabaseSchema>;

/**
 * Finds pgvector and, when `enable`, creates the extension where the server has it but this
 * database does not yet (it needs a privilege the configured role may lack: then the reason says
 * so). Without `enable` (vector_stores.index: exact) an installed extension is still reported, so
 * that index rows are kept in step for instances that do use it.
 */
export async function detectPgvector(db: Kysely<DatabaseSchema>, enable: boolean): Promise<PgvectorState> {
  let found = await installed(db);
  if (!found && !enable) return { pgvector: null, reason: "vector_stores.index is exact" };
  if (!found) {
    let available: boolean;
    try {
      const result = await sql<{ n: number }>`select count(*) as n from pg_available_extensions
        where name = 'vector'`.execute(db);
      available = Number(result.rows[0]?.n ?? 0) > 0;
    } catch (err) {
      return { pgvector: null, reason: `pgvector could not be looked for: ${message(err)}` };
    }
    if (!available) return { pgvector: null, reason: "pgvector is not installed on this server" };
    try {
      await sql`create extension if not exists vector`.execute(db);
    } catch (err) {
      return {
        pgvector: null,
        reason: `pgvector is installed on this server but could not be enabled in this database: create extension vector failed: ${message(err)}`,
      };
    }
    found = await installed(db);
    if (!found) return { pgvector: null, reason: "pgvector is installed on this server but was not enabled" };
  }
  return { pgvector: found, reason: enable ? null : "vector_stores.index is exact" };
}

async function installed(db: Kysely<DatabaseSchema>): Promise<Pgvector | null> {
  const result = await sql<{ schema: string; version: string }>`
    select n.nspname as schema, e.extversion as version
    from pg_extension e join pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'vector'`.execute(db);
  const row = result.rows[0];
  if (!row) return null;
  return { schema: row.schema, version: row.version, iterativeScan: atLeast(row.version, [0, 8, 0]) };
}

function atLeast(version: string, wanted: readonly number[]): boolean {
  const parts = version.split(".").map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < wanted.length; i++) {
    const have = parts[i] ?? 0;
    const want = wanted[i] as number;
    if (have !== want) return have > want;
  }
  return true;
}

function message(err: unknown): string {
  return (err as Error).message.slice(0, 200);
}

/** HNSW indexes take vectors of at most this many floats; larger ones get a table without one. */
export const HNSW_MAX_DIMENSIONS = 2000;

/** The pgvector type of `dims` floats, named in its own schema. */
export function vectorType(pgvector: Pgvector, dims: number): RawBuilder<unknown> {
  return sql`${sql.id(pgvector.schema)}.vector(${sql.raw(String(dims))})`;
}

/** pgvector's cosine distance operator, named in its own schema. */
export function cosineDistance(pgvector: Pgvector): RawBuilder<unknown> {
  return sql.raw(`operator(${quoteId(pgvector.schema)}.<=>)`);
}

function quoteId(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** pgvector's `vector` holds at most this many floats; larger vectors stay out of its tables (scanned). */
export const PGVECTOR_MAX_DIMENSIONS = 16_000;

/** The index table of vectors of `dims` floats (one per size: an HNSW index needs a fixed one). */
export function pgvectorTableName(dims: number): string {
  if (!Number.isInteger(dims) || dims < 1 || dims > PGVECTOR_MAX_DIMENSIONS)
    throw new Error(`bad vector size ${dims}`);
  return `vector_store_vec_${dims}`;
}

/** The index tables that exist in this schema. */
export async function pgvectorTables(db: Db): Promise<string[]> {
  const rows = await sql<{ name: string }>`select c.relname as name from pg_class c
    where c.relnamespace = current_schema()::regnamespace and c.relkind = 'r'
      and c.relname ~ '^vector_store_vec_[0-9]+$'`.execute(db);
  return rows.rows.map((r) => r.name);
}

/**
 * Creates the index table of `dims` floats where missing: each row a searchable chunk's vector,
 * removed with its chunk (on delete cascade: every path that deletes chunks, in its transaction),
 * with an HNSW cosine index. An advisory lock keeps two transactions from creating it at once.
 */
export async function ensurePgvectorTable(
  trx: Transaction<DatabaseSchema>,
  pgvector: Pgvector,
  dims: number,
) {
  const name = pgvectorTableName(dims);
  const exists = await sql<{
    t: string | null;
  }>`select to_regclass(quote_ident(current_schema()) || '.' || ${name}) as t`.execute(trx);
  if (exists.rows[0]?.t) return;
  await sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.' || ${name}))`.execute(trx);
  const table = sql.table(name);
  await sql`create table if not exists ${table} (
    id bigint primary key references vector_store_chunks (id) on delete cascade,
    vector_store_id varchar(64) not null,
    file_id varchar(64) not null,
    embedding ${vectorType(pgvector, dims)} not null)`.execute(trx);
  await sql`create index if not exists ${sql.id(`${name}_store`)} on ${table} (vector_store_id, file_id)`.execute(
    trx,
  );
  if (dims <= HNSW_MAX_DIMENSIONS)
    await sql`create index if not exists ${sql.id(`${name}_hnsw`)} on ${table}
      using hnsw (embedding ${sql.raw(`${quoteId(pgvector.schema)}.vector_cosine_ops`)})`.execute(trx);
}

/**
 * Stored little-endian float32 bytes as pgvector's text form; null when they cannot be one (a
 * value that is not finite).
 */
export function vectorText(bytes: Uint8Array): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return floatsText(Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true)));
}

/**
 * Floats as pgvector's text form (null when one is not finite). Each float32 is printed as the
 * shortest decimal that reads back as it, so pgvector parses it to the very same float.
 */
export function floatsText(values: ArrayLike<number>): string | null {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number;
    if (!Number.isFinite(x)) return null;
    parts[i] = String(x);
  }
  return `[${parts.join(",")}]`;
}

/** A chunk's vector as read for indexing. */
export interface ChunkVectorRow {
  id: number | string;
  embedding: Uint8Array;
}

const INSERT_ROWS = 500;

/**
 * Adds chunks' vectors to the index tables of their sizes (created where missing). Only chunks
 * that still exist are added, and a row already there is left as it is: safe to repeat.
 */
export async function indexChunkVectors(
  trx: Transaction<DatabaseSchema>,
  pgvector: Pgvector,
  rows: readonly ChunkVectorRow[],
): Promise<void> {
  const bySize = new Map<number, { ids: number[]; texts: string[] }>();
  for (const row of rows) {
    const dims = row.embedding.byteLength / 4;
    if (!Number.isInteger(dims) || dims < 1 || dims > PGVECTOR_MAX_DIMENSIONS) continue;
    const text = vectorText(row.embedding);
    if (text === null) continue;
    let group = bySize.get(dims);
    if (!group) {
      group = { ids: [], texts: [] };
      bySize.set(dims, group);
    }
    group.ids.push(Number(row.id));
    group.texts.push(text);
  }
  for (const [dims, { ids, texts }] of bySize) {
    await ensurePgvectorTable(trx, pgvector, dims);
    for (let i = 0; i < ids.length; i += INSERT_ROWS) {
      await sql`insert into ${sql.table(pgvectorTableName(dims))} (id, vector_store_id, file_id, embedding)
        select c.id, c.vector_store_id, c.file_id, v.e::${vectorType(pgvector, dims)}
        from unnest(${ids.slice(i, i + INSERT_ROWS)}::bigint[], ${texts.slice(i, i + INSERT_ROWS)}::text[]) as v(id, e)
        join vector_store_chunks c on c.id = v.id
        on conflict (id) do nothing`.execute(trx);
    }
  }
}

const BACKFILL_PAGE = 1000;

/**
 * Indexes searchable chunks that have no index row: those written before pgvector was enabled (or
 * by an instance told not to use it). Page by page in chunk id order, each page its own
 * transaction: an interrupted run leaves only whole pages, and the next start goes on from what is
 * still missing. Returns how many chunks it indexed.
 */
export async function backfillPgvector(db: Kysely<DatabaseSchema>, pgvector: Pgvector): Promise<number> {
  let after = 0;
  let indexed = 0;
  for (;;) {
    const tables = await pgvectorTables(db);
    const missing = tables.map(
      (t) => sql` and not exists (select 1 from ${sql.table(t)} v where v.id = c.id)`,
    );
    const { rows } = await sql<ChunkVectorRow>`select c.id, c.embedding from vector_store_chunks c
      where c.searchable = 1 and c.id > ${after}${sql.join(missing, sql``)}
      order by c.id limit ${BACKFILL_PAGE}`.execute(db);
    if (rows.length > 0) {
      await db.transaction().execute((trx) => indexChunkVectors(trx, pgvector, rows));
      indexed += rows.length;
      after = Number(rows[rows.length - 1]?.id);
    }
    if (rows.length < BACKFILL_PAGE) break;
  }
  // The planner walks the HNSW index only where it knows a store is a large share of the table:
  // statistics now rather than at autovacuum's next round.
  if (indexed > 0)
    for (const table of await pgvectorTables(db)) await sql`analyze ${sql.table(table)}`.execute(db);
  return indexed;
}
