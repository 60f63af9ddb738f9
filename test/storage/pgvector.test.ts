import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweepExpiredVectorStores } from "../../src/api/vector-stores/expiry.js";
import { KyselyChunkIndex } from "../../src/storage/repositories/chunk-index.js";
import { KyselyVectorStoreRepository } from "../../src/storage/repositories/vector-store-repository.js";
import type {
  ChunkHit,
  NewVectorStore,
  StoredVectorStoreFile,
} from "../../src/storage/repositories/vector-store-types.js";
import { openStorage, type Storage } from "../../src/storage/storage.js";
import { type PgliteServer, startPgliteServer } from "../helpers/pglite-server.js";
import { newStoreRow, storedFileRow } from "../helpers/vector-store-rows.js";

const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);
const DAY = 86_400_000;
const LEASE = 60_000;
const DIMS = 16;

function store(id: string, extra: Partial<NewVectorStore> = {}): NewVectorStore {
  return newStoreRow(id, { lastActiveAt: T0, createdAt: T0, ...extra });
}

function file(storeId: string, fileId: string): StoredVectorStoreFile {
  return storedFileRow(storeId, fileId, { createdAt: T0 });
}

/** Deterministic vectors in [-1, 1), not unit length. */
function spread(seed: number, count: number, dims = DIMS): Float32Array[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
  return Array.from({ length: count }, () => Float32Array.from({ length: dims }, next));
}

/** Runs one leased ingestion of `vectors` into a new file of the store, to completion. */
async function ingest(
  repo: KyselyVectorStoreRepository | Storage["vectorStores"],
  storeId: string,
  fileId: string,
  vectors: Float32Array[],
): Promise<void> {
  expect(await repo.attachFiles(storeId, [file(storeId, fileId)])).toBe(true);
  const claimed = await repo.claimIngestion("w", T0, LEASE, 100);
  expect(claimed.some((c) => c.fileId === fileId)).toBe(true);
  const chunks = vectors.map((embedding, seq) => ({ seq, text: `${fileId} ${seq}`, tokens: 2, embedding }));
  expect(await repo.addChunks("w", storeId, fileId, chunks)).toBe(true);
  expect(await repo.completeIngestion("w", storeId, fileId, ["page"])).toBe(true);
}

describe("pgvector on Postgres (PGlite with pgvector over the wire protocol)", () => {
  let pglite: PgliteServer;
  let storage: Storage;
  const index = () => storage.chunkIndex as KyselyChunkIndex;
  const rows = async (table = `vector_store_vec_${DIMS}`, storeId?: string) => {
    const where = storeId ? sql` where vector_store_id = ${storeId}` : sql``;
    const result = await sql<{ n: number }>`select count(*) as n from ${sql.table(table)}${where}`.execute(
      storage.database.db,
    );
    return Number(result.rows[0]?.n);
  };
  const expectSameAsScan = async (
    storeId: string,
    query: Float32Array,
    files: string[] | null,
    limit: number,
    chunkIndex = index(),
  ): Promise<ChunkHit[]> => {
    const scanned = await chunkIndex.vectorSearch(storeId, query, files, limit, { via: "scan" });
    const indexed = await chunkIndex.vectorSearch(storeId, query, files, limit, { via: "index" });
    expect(indexed.map((h) => h.chunkId)).toEqual(scanned.map((h) => h.chunkId));
    // Scored again from the stored floats as the scan scores them: the very same numbers.
    expect(indexed.map((h) => h.score)).toEqual(scanned.map((h) => h.score));
    return indexed;
  };

  beforeAll(async () => {
    pglite = await startPgliteServer();
    storage = await openStorage({ url: pglite.url, poolSize: 4, vectorCacheBytes: 0 });
  }, 60_000);
  afterAll(async () => {
    await storage?.close();
    await pglite?.stop();
  });

  it("enables pgvector at start and searches through it", async () => {
    expect(storage.database.exactVectorSearchReason).toBeNull();
    expect(storage.database.pgvector).toMatchObject({ iterativeScan: true });
    expect(storage.chunkIndex.vectorIndex).toBe("pgvector");
    expect(await index().prepareIndex()).toBe(0);
  });

  it("indexes completed files in their size's table and answers as the exact scan does", async () => {
    const repo = storage.vectorStores;
    await repo.create(store("vs_a"), []);
    await repo.create(store("vs_b"), []);
    const a = spread(1, 300);
    await ingest(repo, "vs_a", "file-a1", a.slice(0, 200));
    await ingest(repo, "vs_a", "file-a2", a.slice(200));
    // vs_b holds copies of vs_a's vectors: a search of one store must never return the other's.
    await ingest(repo, "vs_b", "file-b1", a.slice(0, 150));
    // Another vector size: its own table.
    await ingest(repo, "vs_b", "file-b2", spread(7, 20, 8));
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_a")).toBe(300);
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_b")).toBe(150);
    expect(await rows("vector_store_vec_8")).toBe(20);

    for (const [i, query] of spread(42, 12).entries()) {
      const hits = await expectSameAsScan("vs_a", query, null, 10 + i * 5);
      expect(hits).toHaveLength(10 + i * 5);
      const stored = await storage.chunkIndex.chunks(hits.map((h) => h.chunkId));
      expect(stored.every((c) => c.vectorStoreId === "vs_a")).toBe(true);
    }
    // A query that is one of the stored vectors finds it first, at similarity 1.
    const [top] = await expectSameAsScan("vs_b", a[3] as Float32Array, null, 5);
    expect(top?.score).toBeCloseTo(1, 6);
    expect((await storage.chunkIndex.chunks([top?.chunkId as number]))[0]).toMatchObject({
      vectorStoreId: "vs_b",
      text: "file-b1 3",
    });
    // A store with fewer chunks than asked for: all of them.
    expect(await expectSameAsScan("vs_b", spread(3, 1, 8)[0] as Float32Array, null, 50)).toHaveLength(20);
    // Restricted to files.
    const filtered = await expectSameAsScan("vs_a", spread(5, 1)[0] as Float32Array, ["file-a2"], 20);
    const texts = (await storage.chunkIndex.chunks(filtered.map((h) => h.chunkId))).map((c) => c.text);
    expect(texts.every((t) => t.startsWith("file-a2 "))).toBe(true);
    expect(await storage.chunkIndex.vectorSearch("vs_a", a[0] as Float32Array, ["nope"], 5)).toEqual([]);
    // A size no store has.
    expect(
      await storage.chunkIndex.vectorSearch("vs_a", spread(1, 1, 4)[0] as Float32Array, null, 5),
    ).toEqual([]);
    // The default path with cache_bytes 0 is the index.
    const auto = await storage.chunkIndex.vectorSearch("vs_a", a[9] as Float32Array, null, 5);
    expect(auto[0]?.score).toBeCloseTo(1, 6);
  });

  it("walks the HNSW index with iterative scans where the planner takes it, and finds the exact top hits", async () => {
    // The planner sorts a store this small exactly. PGlite is one session: a setting made through
    // one connection holds for all, so this one (no sorting) steers every search onto the HNSW
    // index, the one plan that hands rows over in order.
    const db = storage.database.db;
    await sql`set enable_sort = off`.execute(db);
    try {
      const query = spread(61, 1)[0] as Float32Array;
      const plan = await db.transaction().execute(async (trx) => {
        await sql`set local hnsw.iterative_scan = relaxed_order`.execute(trx);
        const text = `[${Array.from(query).join(",")}]`;
        const result = await sql<Record<string, string>>`explain select id from vector_store_vec_16
          where vector_store_id = 'vs_a' order by embedding <=> ${text}::vector(16) limit 10`.execute(trx);
        return result.rows.map((r) => Object.values(r)[0]).join("\n");
      });
      expect(plan).toContain("vector_store_vec_16_hnsw");
      const walks = async () => {
        // Counts reach the view once flushed, which an idle backend does not do on its own in PGlite.
        await sql`select pg_stat_force_next_flush()`.execute(db);
        await sql`select pg_stat_clear_snapshot()`.execute(db);
        const result = await sql<{ n: number }>`select idx_scan as n from pg_stat_user_indexes
          where indexrelname = 'vector_store_vec_16_hnsw'`.execute(db);
        return Number(result.rows[0]?.n ?? 0);
      };
      const walked = await walks();
      for (const [i, q] of spread(62, 8).entries()) {
        const limit = 10 + 3 * i;
        const scanned = await index().vectorSearch("vs_a", q, null, limit, { via: "scan" });
        const indexed = await index().vectorSearch("vs_a", q, null, limit, { via: "index" });
        expect(indexed).toHaveLength(limit);
        // At this size the walk (ef_search at least 2 × k) misses none of the exact top hits.
        expect(indexed).toEqual(scanned);
      }
      // Each search was the index's walk (none came back short and sorted the store instead).
      expect((await walks()) - walked).toBe(8);
    } finally {
      await sql`reset enable_sort`.execute(db);
    }
  });

  it("without iterative scans (pgvector before 0.8) orders the store's rows exactly in the database", async () => {
    const pgvector = storage.database.pgvector;
    if (!pgvector) throw new Error("no pgvector");
    const older = new KyselyChunkIndex(storage.database.db, "postgres", {
      exactOnly: false,
      memoryBudgetBytes: 0,
      pgvector: { ...pgvector, version: "0.7.4", iterativeScan: false },
    });
    await older.prepareIndex();
    for (const query of spread(77, 5)) await expectSameAsScan("vs_a", query, null, 25, older);
  });

  it("removes index rows with their chunks: a file detached, a failed file, a store deleted, a store expired", async () => {
    const repo = storage.vectorStores;
    expect(await repo.deleteFile("proj_a", "vs_a", "file-a1")).toBe(true);
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_a")).toBe(100);
    await expectSameAsScan("vs_a", spread(8, 1)[0] as Float32Array, null, 10);

    await repo.attachFiles("vs_a", [file("vs_a", "file-bad")]);
    await repo.claimIngestion("w", T0, LEASE, 100);
    await repo.addChunks("w", "vs_a", "file-bad", [
      { seq: 0, text: "x", tokens: 1, embedding: spread(9, 1)[0] as Float32Array },
    ]);
    expect(
      await repo.failIngestion("w", "vs_a", "file-bad", { code: "invalid_file", message: "broken" }),
    ).toBe(true);
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_a")).toBe(100);

    expect(await repo.delete("proj_a", "vs_b")).toBe(true);
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_b")).toBe(0);
    expect(await rows("vector_store_vec_8")).toBe(0);

    await repo.create(store("vs_exp", { expiresAfterDays: 1, expiresAt: T0 + DAY }), []);
    await ingest(repo, "vs_exp", "file-e1", spread(11, 30));
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_exp")).toBe(30);
    expect(await sweepExpiredVectorStores(repo, () => T0 + DAY + 1)).toBeGreaterThan(0);
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_exp")).toBe(0);
    expect(
      await storage.chunkIndex.vectorSearch("vs_exp", spread(11, 1)[0] as Float32Array, null, 5),
    ).toEqual([]);
    // What is left is exactly vs_a's searchable chunks.
    expect(await rows()).toBe(100);
  });

  it("indexes chunks written while pgvector was not used, once, at the next start", async () => {
    // An instance that does not index (vector_stores.index: exact before pgvector was enabled).
    const plain = new KyselyVectorStoreRepository(storage.database.db, "postgres", null);
    await plain.create(store("vs_late"), []);
    await ingest(plain, "vs_late", "file-l1", spread(21, 40));
    await ingest(plain, "vs_late", "file-l2", spread(22, 6, 12));
    expect(await rows(`vector_store_vec_${DIMS}`, "vs_late")).toBe(0);

    const restarted = await openStorage({ url: pglite.url, poolSize: 2, vectorCacheBytes: 0 });
    try {
      const later = restarted.chunkIndex as KyselyChunkIndex;
      // Until the backfill is done, the index path scans: nothing is missed meanwhile.
      const before = await later.vectorSearch("vs_late", spread(23, 1)[0] as Float32Array, null, 5, {
        via: "index",
      });
      expect(before).toHaveLength(5);
      expect(await later.prepareIndex()).toBe(46);
      expect(await rows(`vector_store_vec_${DIMS}`, "vs_late")).toBe(40);
      expect(await rows("vector_store_vec_12")).toBe(6);
      await expectSameAsScan("vs_late", spread(23, 1)[0] as Float32Array, null, 5, later);
      await expectSameAsScan("vs_late", spread(24, 1, 12)[0] as Float32Array, null, 10, later);
      // Nothing is left to do: a second run (another instance, another start) indexes none.
      const again = new KyselyChunkIndex(restarted.database.db, "postgres", {
        exactOnly: false,
        memoryBudgetBytes: 0,
        pgvector: restarted.database.pgvector,
      });
      expect(await again.prepareIndex()).toBe(0);
    } finally {
      await restarted.close();
    }
  });

  it("with vector_stores.index exact does not search through pgvector, but keeps its tables in step", async () => {
    const exact = await openStorage({
      url: pglite.url,
      poolSize: 2,
      vectorCacheBytes: 0,
      vectorIndex: "exact",
    });
    try {
      expect(exact.chunkIndex.vectorIndex).toBe("exact");
      expect(exact.database.exactVectorSearchReason).toContain("vector_stores.index is exact");
      await exact.vectorStores.create(store("vs_x"), []);
      await ingest(exact.vectorStores, "vs_x", "file-x1", spread(31, 12));
      expect(await rows(`vector_store_vec_${DIMS}`, "vs_x")).toBe(12);
    } finally {
      await exact.close();
    }
  });
});

describe("pgvector on a server where the role may not create it", () => {
  let pglite: PgliteServer;
  beforeAll(async () => {
    pglite = await startPgliteServer();
  }, 60_000);
  afterAll(async () => {
    await pglite?.stop();
  });

  it("falls back to the exact scan and says why at start", async () => {
    // PGlite takes every connection as its one user: a role set in its one session holds for all.
    const admin = new pg.Client({ connectionString: pglite.url });
    await admin.connect();
    try {
      await admin.query("create role app_limited nosuperuser");
      await admin.query("grant all on schema public to app_limited");
      await admin.query("set role app_limited");
    } finally {
      await admin.end();
    }
    const storage = await openStorage({ url: pglite.url, poolSize: 2, vectorCacheBytes: 0 });
    try {
      expect(storage.database.pgvector).toBeNull();
      expect(storage.chunkIndex.vectorIndex).toBe("exact");
      expect(storage.database.exactVectorSearchReason).toMatch(
        /^on Postgres there is no vector index \(pgvector is installed on this server but could not be enabled in this database: create extension vector failed: permission denied/,
      );
      // Searches work without it.
      await storage.vectorStores.create(store("vs_plain"), []);
      await ingest(storage.vectorStores, "vs_plain", "file-p1", spread(51, 10));
      const hits = await storage.chunkIndex.vectorSearch(
        "vs_plain",
        spread(52, 1)[0] as Float32Array,
        null,
        3,
      );
      expect(hits).toHaveLength(3);
    } finally {
      await storage.close();
    }
  });
});
