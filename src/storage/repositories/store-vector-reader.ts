import { endianness } from "node:os";
import { type Kysely, sql } from "kysely";
import type { Dialect } from "../database.js";
import type { DatabaseSchema } from "../schema.js";
import type { StoreVectorLoader } from "./store-vector-cache.js";
import { type StoreVectors, StoreVectorsBuilder } from "./store-vectors.js";
import { float32FromBytes } from "./vector-ingestion-repository.js";
import type { ChunkHit } from "./vector-store-types.js";

/** Rows read per round of an exact scan: memory stays bounded whatever the store's size. */
const SCAN_PAGE = 4096;
/** Chunks asked for by id in one statement when a copy in memory catches up with its store. */
const BY_ID_PAGE = 1000;
/** A vector no store has (0 floats): a chunk that vanished while read is skipped. */
const EMPTY = new Uint8Array(0);

/**
 * Reads a store's vectors from the database: the exact scan (every search, where no copy in memory
 * serves), and the loads of StoreVectorCache, with the store's vectors_version that tells whether a
 * copy is current.
 */
export class StoreVectorReader {
  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: Dialect,
  ) {}

  /** The store's vectors_version; undefined when the store is gone. */
  async version(storeId: string): Promise<number | undefined> {
    const row = await this.db
      .selectFrom("vector_stores")
      .select("vectors_version")
      .where("id", "=", storeId)
      .executeTakeFirst();
    return row ? Number(row.vectors_version) : undefined;
  }

  /** How the cache loads the store at `version` (vectors of `dims` floats). */
  loader(storeId: string, version: number, dims: number): StoreVectorLoader {
    return {
      count: async () => {
        const row = await this.db
          .selectFrom("vector_store_chunks")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("vector_store_id", "=", storeId)
          .where("searchable", "=", 1)
          .executeTakeFirst();
        return Number(row?.n ?? 0);
      },
      read: async (capacity, older) => {
        const builder = new StoreVectorsBuilder(dims, capacity);
        const complete = older
          ? await this.readChanges(storeId, builder, older)
          : await this.readAll(storeId, builder);
        if (!complete) return null;
        // Every write to the store's searchable chunks raises the version in its transaction: the
        // same version after the last read means no write landed while they ran.
        const unchanged = (await this.version(storeId)) === version;
        return { vectors: builder.build(), unchanged };
      },
    };
  }

  /** Every searchable vector of the store into `builder`; false when they outnumber its capacity. */
  private async readAll(storeId: string, builder: StoreVectorsBuilder): Promise<boolean> {
    let complete = true;
    await this.eachPage(storeId, null, (rows) => {
      for (const row of rows)
        if (!builder.add(Number(row.id), row.file_id, row.embedding)) {
          complete = false;
          return false;
        }
      return true;
    });
    return complete;
  }

  /**
   * As readAll, but the rows `older` holds are taken from it: only the store's list of chunk ids
   * and the vectors of chunks new since then are read (a chunk's vector never changes). When most
   * rows are new, reading everything page by page is cheaper than asking for them by id.
   */
  private async readChanges(
    storeId: string,
    builder: StoreVectorsBuilder,
    older: StoreVectors,
  ): Promise<boolean> {
    // One statement, so one snapshot of which chunks are searchable.
    const listed = await this.db
      .selectFrom("vector_store_chunks")
      .select(["id", "file_id"])
      .where("vector_store_id", "=", storeId)
      .where("searchable", "=", 1)
      .execute();
    const olderRows = new Map<number, number>();
    for (let row = 0; row < older.count; row++) olderRows.set(older.ids[row] as number, row);
    const fresh = listed.map((r) => Number(r.id)).filter((id) => !olderRows.has(id));
    if (fresh.length > listed.length / 2) return this.readAll(storeId, builder);
    const vectors = new Map<number, Uint8Array>();
    for (let i = 0; i < fresh.length; i += BY_ID_PAGE) {
      const rows = await this.db
        .selectFrom("vector_store_chunks")
        .select(["id", "embedding"])
        .where("id", "in", fresh.slice(i, i + BY_ID_PAGE))
        .execute();
      for (const row of rows) vectors.set(Number(row.id), row.embedding as Uint8Array);
    }
    for (const { id, file_id } of listed) {
      const chunkId = Number(id);
      const olderRow = olderRows.get(chunkId);
      const added =
        olderRow !== undefined
          ? builder.addFrom(chunkId, file_id, older, olderRow)
          : builder.add(chunkId, file_id, vectors.get(chunkId) ?? EMPTY);
      if (!added) return false;
    }
    return true;
  }

  /**
   * The store's searchable chunks (of `fileIds`), page by page, in no particular order, until
   * `onPage` returns false. Each way is linear in the store's size whatever the planner knows:
   * Postgres streams one statement through a cursor (keyset pages were planned as "sort the
   * store's remaining rows" for every page while a freshly ingested table had no statistics yet:
   * 15 s for 100,000 chunks against 2 s once analyzed); SQLite pages along the (store, file, seq)
   * unique index, a range read per page.
   */
  private async eachPage(
    storeId: string,
    fileIds: readonly string[] | null,
    onPage: (rows: readonly VectorRow[]) => boolean,
  ): Promise<void> {
    const files = fileIds ? sql` and file_id in (${sql.join(fileIds)})` : sql``;
    if (this.dialect === "postgres") {
      await this.db.transaction().execute(async (trx) => {
        await sql`declare store_vectors no scroll cursor for
          select id, file_id, embedding from vector_store_chunks
          where vector_store_id = ${storeId} and searchable = 1${files}`.execute(trx);
        for (;;) {
          const { rows } =
            await sql<VectorRow>`fetch forward ${sql.raw(String(SCAN_PAGE))} from store_vectors`.execute(trx);
          if (rows.length > 0 && !onPage(rows)) return;
          if (rows.length < SCAN_PAGE) return;
        }
      });
      return;
    }
    let after: { fileId: string; seq: number } | undefined;
    for (;;) {
      // A row-value comparison: the planner reads it as one range of the index.
      const from = after ? sql` and (file_id, seq) > (${after.fileId}, ${after.seq})` : sql``;
      const { rows } = await sql<VectorRow & { seq: number }>`
        select id, file_id, seq, embedding from vector_store_chunks
        where vector_store_id = ${storeId} and searchable = 1${files}${from}
        order by file_id, seq limit ${SCAN_PAGE}`.execute(this.db);
      if (rows.length > 0 && !onPage(rows)) return;
      const last = rows[rows.length - 1];
      if (rows.length < SCAN_PAGE || !last) return;
      after = { fileId: last.file_id, seq: Number(last.seq) };
    }
  }

  /** Cosine similarity against every searchable vector of the store (of `fileIds`), read from the database. */
  async scan(
    storeId: string,
    query: Float32Array,
    fileIds: readonly string[] | null,
    limit: number,
  ): Promise<ChunkHit[]> {
    let queryNorm = 0;
    for (const x of query) queryNorm += x * x;
    queryNorm = Math.sqrt(queryNorm) || 1;
    const best = new TopK(limit);
    await this.eachPage(storeId, fileIds, (rows) => {
      for (const row of rows) {
        const bytes = row.embedding;
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
      return true;
    });
    return best.sorted();
  }
}

/** A chunk's vector as the scans read it. */
interface VectorRow {
  id: number | string;
  file_id: string;
  embedding: Uint8Array;
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

/** The k best hits seen so far, equal scores by lower chunk id (a bounded sorted list: k is at most a few hundred). */
class TopK {
  private readonly hits: ChunkHit[] = [];

  constructor(private readonly k: number) {}

  offer(chunkId: number, score: number): void {
    const hits = this.hits;
    const before = (hit: ChunkHit) => score > hit.score || (score === hit.score && chunkId < hit.chunkId);
    if (hits.length === this.k && !before(hits[hits.length - 1] as ChunkHit)) return;
    let i = hits.length;
    while (i > 0 && before(hits[i - 1] as ChunkHit)) i--;
    hits.splice(i, 0, { chunkId, score });
    if (hits.length > this.k) hits.pop();
  }

  sorted(): ChunkHit[] {
    return this.hits;
  }
}
