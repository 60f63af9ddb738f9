import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweepExpiredVectorStores } from "../../src/api/vector-stores/expiry.js";
import { postgresKeywordSearch } from "../../src/storage/repositories/postgres-keyword-search.js";
import { rowBytes } from "../../src/storage/repositories/store-vectors.js";
import type {
  NewChunk,
  NewVectorStore,
  StoredVectorStoreFile,
} from "../../src/storage/repositories/vector-store-types.js";
import { openStorage, type Storage } from "../../src/storage/storage.js";
import { type TestDatabase, testDatabases } from "../helpers/databases.js";
import { newStoreRow, storedFileRow } from "../helpers/vector-store-rows.js";

const databases = await testDatabases();
const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);
const LEASE = 60_000;

function store(id: string, projectId = "proj_a", extra: Partial<NewVectorStore> = {}): NewVectorStore {
  return newStoreRow(id, { projectId, metadata: { team: "x" }, lastActiveAt: T0, createdAt: T0, ...extra });
}

function file(
  storeId: string,
  fileId: string,
  extra: Partial<StoredVectorStoreFile> = {},
): StoredVectorStoreFile {
  return storedFileRow(storeId, fileId, { attributes: { year: 2024, lang: "en" }, createdAt: T0, ...extra });
}

/** A unit vector along axis `i` of 8, nudged by `j` toward the next axis. */
function vector(i: number, j = 0): Float32Array {
  const v = new Float32Array(8);
  v[i % 8] = 1;
  v[(i + 1) % 8] = j;
  return v;
}

/** Deterministic vectors of 8 floats in [-1, 1), not unit length (memory search scales them itself). */
function spread(seed: number, count: number): Float32Array[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
  return Array.from({ length: count }, () => Float32Array.from({ length: 8 }, next));
}

const chunk = (seq: number, text: string, embedding: Float32Array): NewChunk => ({
  seq,
  text,
  tokens: text.split(" ").length,
  embedding,
});

describe.each(databases)("vector store storage on $name", (database: TestDatabase) => {
  let storage: Storage;
  beforeAll(async () => {
    storage = await database.open();
  });
  afterAll(async () => {
    await storage?.close();
    await database.drop();
  });

  it("creates stores with their first files, pages them both ways, and hides them from other projects", async () => {
    // sqlite-vec loads on SQLite here; the test Postgres has no pgvector, so it scans (pgvector.test.ts has one).
    expect(storage.chunkIndex.vectorIndex).toBe(database.name === "sqlite" ? "sqlite-vec" : "exact");
    const repo = storage.vectorStores;
    for (let i = 0; i < 5; i++) await repo.create(store(`vs_page${i}`, "proj_p", { createdAt: T0 + i }), []);
    const first = await repo.list("proj_p", { limit: 2, order: "desc" });
    expect(first.map((s) => s.id)).toEqual(["vs_page4", "vs_page3", "vs_page2"]);
    const next = await repo.list("proj_p", { limit: 2, order: "desc", after: "vs_page3" });
    expect(next.map((s) => s.id)).toEqual(["vs_page2", "vs_page1", "vs_page0"]);
    const back = await repo.list("proj_p", { limit: 2, order: "desc", before: "vs_page1" });
    expect(back.map((s) => s.id)).toEqual(["vs_page3", "vs_page2", "vs_page4"]);
    const asc = await repo.list("proj_p", { limit: 10, order: "asc" });
    expect(asc.map((s) => s.id)).toEqual(["vs_page0", "vs_page1", "vs_page2", "vs_page3", "vs_page4"]);

    await repo.create(store("vs_one"), [file("vs_one", "file-a"), file("vs_one", "file-b")]);
    expect(await repo.get("proj_a", "vs_one")).toMatchObject({ id: "vs_one", metadata: { team: "x" } });
    expect(await repo.get("proj_other", "vs_one")).toBeUndefined();
    expect(await repo.list("proj_other", { limit: 10, order: "desc" })).toEqual([]);
    expect(await repo.getFile("proj_other", "vs_one", "file-a")).toBeUndefined();
    expect(await repo.deleteFile("proj_other", "vs_one", "file-a")).toBe(false);
    expect(await repo.delete("proj_other", "vs_one")).toBe(false);
    const usage = await repo.usage("proj_a", ["vs_one"]);
    expect(usage.get("vs_one")).toEqual({
      usageBytes: 0,
      counts: { inProgress: 2, completed: 0, failed: 0, cancelled: 0, total: 2 },
    });
    expect(await repo.update("proj_a", "vs_one", { name: "renamed", metadata: null })).toMatchObject({
      name: "renamed",
      metadata: null,
    });
  });

  it("leases each waiting file to one worker, resumes without duplicate chunks, and indexes it on completion", async () => {
    const repo = storage.vectorStores;
    await repo.create(store("vs_ingest"), [file("vs_ingest", "file-1")]);
    const claimed = await repo.claimIngestion("w1", T0, LEASE, 10);
    expect(claimed.map((c) => c.fileId)).toContain("file-1");
    const mine = claimed.filter((c) => c.vectorStoreId === "vs_ingest");
    expect(await repo.claimIngestion("w2", T0 + 1, LEASE, 10)).toEqual([]);

    expect(
      await repo.addChunks("w1", "vs_ingest", "file-1", [chunk(0, "the red fox jumps", vector(0))]),
    ).toBe(true);
    // Another worker without the lease writes nothing.
    expect(await repo.addChunks("w2", "vs_ingest", "file-1", [chunk(1, "intruder", vector(1))])).toBe(false);
    // The lease lapses (w1 died); w2 takes the file over and writes everything again.
    const retaken = await repo.claimIngestion("w2", T0 + LEASE + 1, LEASE, 10);
    expect(retaken.find((c) => c.fileId === "file-1")?.attempts).toBe(2);
    expect(await repo.chunkCount("vs_ingest", "file-1")).toBe(1);
    expect(
      await repo.addChunks("w2", "vs_ingest", "file-1", [
        chunk(0, "the red fox jumps", vector(0)),
        chunk(1, "a blue whale sings", vector(1)),
        chunk(2, "green grass grows", vector(2)),
      ]),
    ).toBe(true);
    expect(await repo.chunkCount("vs_ingest", "file-1")).toBe(3);
    // The old owner can no longer finish it.
    expect(await repo.completeIngestion("w1", "vs_ingest", "file-1", ["x"])).toBe(false);
    expect(await storage.chunkIndex.keywordSearch("vs_ingest", ["whale"], null, 5)).toEqual([]);

    expect(await repo.completeIngestion("w2", "vs_ingest", "file-1", ["page one", "page two"])).toBe(true);
    expect(mine).toHaveLength(1);
    expect((await repo.getFile("proj_a", "vs_ingest", "file-1"))?.status).toBe("completed");
    expect(await repo.filePages("proj_a", "vs_ingest", "file-1")).toEqual(["page one", "page two"]);
    // Text bytes plus 8 float32s per chunk.
    const text = "the red fox jumps" + "a blue whale sings" + "green grass grows";
    expect((await repo.usage("proj_a", ["vs_ingest"])).get("vs_ingest")?.usageBytes).toBe(
      text.length + 3 * 32,
    );

    const keyword = await storage.chunkIndex.keywordSearch("vs_ingest", ["whales", "nothing"], null, 5);
    const [found] = await storage.chunkIndex.chunks(keyword.map((h) => h.chunkId));
    expect(found?.text).toBe("a blue whale sings");

    for (const via of ["auto", "memory", "index", "scan"] as const) {
      const hits = await storage.chunkIndex.vectorSearch("vs_ingest", vector(2, 0.1), null, 2, { via });
      expect(hits).toHaveLength(2);
      const texts = (await storage.chunkIndex.chunks(hits.map((h) => h.chunkId))).map((c) => c.text);
      expect(texts).toContain("green grass grows");
      expect(hits[0]?.score).toBeCloseTo(1 / Math.sqrt(1.01), 4);
    }
    // Restricted to files: the scan honours it.
    expect(await storage.chunkIndex.vectorSearch("vs_ingest", vector(2), ["file-none"], 5)).toEqual([]);
    expect(await storage.chunkIndex.keywordSearch("vs_ingest", ["whale"], ["file-none"], 5)).toEqual([]);
    expect(await storage.chunkIndex.keywordSearch("vs_ingest", ["whale"], ["file-1"], 5)).toHaveLength(1);
  });

  it("drops a detached or failed file's chunks from both indexes, and never claims files of expired stores", async () => {
    const repo = storage.vectorStores;
    await repo.create(store("vs_drop"), [file("vs_drop", "file-d"), file("vs_drop", "file-f")]);
    const jobs = (await repo.claimIngestion("w3", T0, LEASE, 50)).filter(
      (j) => j.vectorStoreId === "vs_drop",
    );
    expect(jobs).toHaveLength(2);
    await repo.addChunks("w3", "vs_drop", "file-d", [chunk(0, "zebra crossing", vector(3))]);
    await repo.completeIngestion("w3", "vs_drop", "file-d", ["zebra crossing"]);
    await repo.addChunks("w3", "vs_drop", "file-f", [chunk(0, "zebra stripes", vector(3))]);
    expect(
      await repo.failIngestion("w3", "vs_drop", "file-f", { code: "invalid_file", message: "broken" }),
    ).toBe(true);
    expect(await repo.getFile("proj_a", "vs_drop", "file-f")).toMatchObject({
      status: "failed",
      lastError: { code: "invalid_file", message: "broken" },
    });
    expect(await repo.chunkCount("vs_drop", "file-f")).toBe(0);
    expect(await storage.chunkIndex.keywordSearch("vs_drop", ["zebra"], null, 5)).toHaveLength(1);

    expect(await repo.deleteFile("proj_a", "vs_drop", "file-d")).toBe(true);
    expect(await storage.chunkIndex.keywordSearch("vs_drop", ["zebra"], null, 5)).toEqual([]);
    for (const via of ["auto", "memory", "index", "scan"] as const)
      expect(await storage.chunkIndex.vectorSearch("vs_drop", vector(3), null, 5, { via })).toEqual([]);

    await repo.create(store("vs_old", "proj_a", { expiresAt: T0 + 10 }), [file("vs_old", "file-o")]);
    const later = await repo.claimIngestion("w4", T0 + 11, LEASE, 50);
    expect(later.filter((j) => j.vectorStoreId === "vs_old")).toEqual([]);
  });

  it("searches a store's copy in memory exactly as the database scan does, and sees writes made through another handle", async () => {
    // Two handles on one database: two instances of a scaled-out deployment.
    const other = await database.open();
    try {
      const repo = storage.vectorStores;
      await repo.create(store("vs_mem"), [file("vs_mem", "file-m1"), file("vs_mem", "file-m2")]);
      await repo.claimIngestion("w6", T0, LEASE, 50);
      const first = spread(1, 40);
      await repo.addChunks(
        "w6",
        "vs_mem",
        "file-m1",
        first.map((v, i) => chunk(i, `one ${i}`, v)),
      );
      await repo.completeIngestion("w6", "vs_mem", "file-m1", ["one"]);
      const probe = spread(99, 1)[0] as Float32Array;
      const search = (index: Storage["chunkIndex"], via: "memory" | "scan", files: string[] | null = null) =>
        index.vectorSearch("vs_mem", probe, files, 10, { via });
      const texts = async (hits: { chunkId: number }[]) => {
        const byId = new Map(
          (await other.chunkIndex.chunks(hits.map((h) => h.chunkId))).map((c) => [c.id, c]),
        );
        return hits.map((h) => byId.get(h.chunkId)?.text);
      };
      const expectSame = async (files: string[] | null = null) => {
        const scanned = await search(other.chunkIndex, "scan", files);
        const held = await search(other.chunkIndex, "memory", files);
        expect(held.map((h) => h.chunkId)).toEqual(scanned.map((h) => h.chunkId));
        for (const [i, hit] of held.entries()) expect(hit.score).toBeCloseTo(scanned[i]?.score as number, 5);
        return held;
      };

      const before = await expectSame();
      expect(before).toHaveLength(10);
      expect(other.chunkIndex.memoryStats()).toMatchObject({ stores: 1, bytes: 40 * rowBytes(8) });

      // The second file completes through the first handle; the next search through the other
      // handle sees it. Its best chunk is the probe itself, so it must come first.
      await repo.addChunks("w6", "vs_mem", "file-m2", [
        chunk(0, "two best", probe),
        chunk(1, "two next", first[0] as Float32Array),
      ]);
      await repo.completeIngestion("w6", "vs_mem", "file-m2", ["two"]);
      const after = await expectSame();
      expect((await texts(after))[0]).toBe("two best");
      expect(after[0]?.score).toBeCloseTo(1, 5);
      expect(await texts(await expectSame(["file-m2"]))).toEqual(["two best", "two next"]);
      expect(await search(other.chunkIndex, "memory", ["file-none"])).toEqual([]);

      // Detached through the first handle: gone from the other's next search.
      expect(await repo.deleteFile("proj_a", "vs_mem", "file-m1")).toBe(true);
      expect(await texts(await expectSame())).toEqual(["two best", "two next"]);

      // A re-attached file is out until it completes again.
      await repo.attachFiles("vs_mem", [file("vs_mem", "file-m2")]);
      expect(await expectSame()).toEqual([]);

      await repo.delete("proj_a", "vs_mem");
      expect(await search(other.chunkIndex, "memory")).toEqual([]);
      expect(other.chunkIndex.memoryStats()?.stores).toBe(0);
    } finally {
      await other.close();
    }
  });

  it("keeps no vectors in memory with a budget of 0, and scans a store larger than the budget from the database", async () => {
    const repo = storage.vectorStores;
    await repo.create(store("vs_big"), [file("vs_big", "file-big")]);
    await repo.claimIngestion("w7", T0, LEASE, 50);
    const vectors = spread(5, 30);
    await repo.addChunks(
      "w7",
      "vs_big",
      "file-big",
      vectors.map((v, i) => chunk(i, `big ${i}`, v)),
    );
    await repo.completeIngestion("w7", "vs_big", "file-big", ["big"]);
    const probe = vectors[7] as Float32Array;
    const reference = await storage.chunkIndex.vectorSearch("vs_big", probe, null, 5, { via: "scan" });
    expect(reference).toHaveLength(5);
    // 30 rows of 8 floats take 30 × rowBytes(8) = 2,280 bytes: 1,000 is too few, 0 keeps nothing.
    for (const budget of [0, 1000]) {
      const handle = await (database.name === "sqlite"
        ? openStorage({ url: database.url, vectorCacheBytes: budget })
        : openStorage({ url: database.url, schema: database.schema as string, vectorCacheBytes: budget }));
      try {
        const hits = await handle.chunkIndex.vectorSearch("vs_big", probe, null, 5, { via: "memory" });
        expect(hits.map((h) => h.chunkId)).toEqual(reference.map((h) => h.chunkId));
        expect(handle.chunkIndex.memoryStats()?.stores ?? 0).toBe(0);
      } finally {
        await handle.close();
      }
    }
  });

  it("ranks keyword matches by how well they match; on Postgres a common word ranks a bounded set of candidates without crowding out a rare one", async () => {
    const repo = storage.vectorStores;
    await repo.create(store("vs_kw"), [file("vs_kw", "file-k")]);
    await repo.claimIngestion("w9", T0, LEASE, 50);
    // Every chunk says harbor (one to three times); the last three say it five times, and quartz.
    const texts = Array.from({ length: 40 }, (_, i) =>
      i >= 37
        ? `harbor harbor harbor harbor harbor filler${i} quartz`
        : `${"harbor ".repeat(1 + (i % 3))}filler${i}`,
    );
    await repo.addChunks(
      "w9",
      "vs_kw",
      "file-k",
      texts.map((t, i) => chunk(i, t, vector(i))),
    );
    await repo.completeIngestion("w9", "vs_kw", "file-k", texts);
    const textsOf = async (hits: readonly { chunkId: number }[]) =>
      (await storage.chunkIndex.chunks(hits.map((h) => h.chunkId))).map((c) => c.text);

    const both = await storage.chunkIndex.keywordSearch("vs_kw", ["harbor", "quartz"], null, 50);
    expect(both).toHaveLength(40);
    expect((await textsOf(both.slice(0, 3))).every((t) => t.includes("quartz"))).toBe(true);
    if (database.name !== "postgres") return;

    const db = storage.database.db;
    // Under the budget every match is ranked: the same list as ranking all of them.
    const exhaustive = await sql<{ id: number; score: number }>`
      select id, ts_rank_cd(text_search, q) as score
      from vector_store_chunks, to_tsquery('english', '''harbor'' | ''quartz''') q
      where vector_store_id = 'vs_kw' and searchable = 1 and text_search @@ q
      order by score desc, id limit 20`.execute(db);
    const ranked = await storage.chunkIndex.keywordSearch("vs_kw", ["harbor", "quartz"], null, 20);
    expect(ranked).toEqual(exhaustive.rows.map((r) => ({ chunkId: Number(r.id), score: Number(r.score) })));

    // Over it (10 candidates shared by two terms, at least the 3 asked for each), harbor brings only
    // some of its 40 matches, and quartz, in the last chunks written, still comes first.
    const bounded = await postgresKeywordSearch(db, "vs_kw", ["harbor", "quartz"], null, 3, 10);
    expect(bounded).toHaveLength(3);
    expect((await textsOf(bounded)).every((t) => t.includes("quartz"))).toBe(true);
    expect(await postgresKeywordSearch(db, "vs_kw", ["harbor"], null, 40, 10)).toHaveLength(40);
    // harbor alone ranks the first 10 it finds (in table order): not the last three, its best.
    const sample = await postgresKeywordSearch(db, "vs_kw", ["harbor"], null, 3, 10);
    expect(sample).toHaveLength(3);
    expect((await textsOf(sample)).some((t) => t.includes("quartz"))).toBe(false);
    const all = await postgresKeywordSearch(db, "vs_kw", ["harbor"], null, 3);
    expect((await textsOf(all)).every((t) => t.includes("quartz"))).toBe(true);
    // A file filter applies before the budget.
    expect(await postgresKeywordSearch(db, "vs_kw", ["harbor"], ["file-none"], 3, 10)).toEqual([]);
  });

  it("cancels a file batch's unfinished files and counts them; deleting a store removes everything", async () => {
    const repo = storage.vectorStores;
    await repo.create(store("vs_batch"), []);
    const batch = {
      id: "vsfb_1",
      vectorStoreId: "vs_batch",
      projectId: "proj_a",
      createdAt: T0,
      cancelledAt: null,
    };
    await repo.attachFiles(
      "vs_batch",
      [file("vs_batch", "file-x", { batchId: "vsfb_1" }), file("vs_batch", "file-y", { batchId: "vsfb_1" })],
      batch,
    );
    expect(await repo.getBatch("proj_a", "vs_batch", "vsfb_1")).toMatchObject({
      id: "vsfb_1",
      cancelledAt: null,
    });
    expect(await repo.getBatch("proj_b", "vs_batch", "vsfb_1")).toBeUndefined();
    const jobs = (await repo.claimIngestion("w5", T0, LEASE, 50)).filter(
      (j) => j.vectorStoreId === "vs_batch",
    );
    await repo.addChunks("w5", "vs_batch", "file-x", [chunk(0, "alpha", vector(4))]);
    await repo.completeIngestion("w5", "vs_batch", "file-x", ["alpha"]);
    await repo.cancelBatch("proj_a", "vs_batch", "vsfb_1", T0 + 5);
    expect(await repo.batchCounts("vsfb_1")).toEqual({
      inProgress: 0,
      completed: 1,
      failed: 0,
      cancelled: 1,
      total: 2,
    });
    expect(jobs).toHaveLength(2);
    expect(await repo.addChunks("w5", "vs_batch", "file-y", [chunk(0, "beta", vector(5))])).toBe(false);
    const listed = await repo.listFiles("proj_a", "vs_batch", {
      limit: 10,
      order: "asc",
      status: "cancelled",
    });
    expect(listed.map((f) => f.fileId)).toEqual(["file-y"]);

    // Attaching a file again starts it over.
    await repo.attachFiles("vs_batch", [file("vs_batch", "file-x")]);
    expect((await repo.getFile("proj_a", "vs_batch", "file-x"))?.status).toBe("in_progress");
    expect(await storage.chunkIndex.keywordSearch("vs_batch", ["alpha"], null, 5)).toEqual([]);

    expect(await repo.delete("proj_a", "vs_batch")).toBe(true);
    expect(await repo.get("proj_a", "vs_batch")).toBeUndefined();
    expect(await repo.listFiles("proj_a", "vs_batch", { limit: 10, order: "asc" })).toEqual([]);
    expect(await repo.chunkCount("vs_batch", "file-x")).toBe(0);
  });
  it("expires stores whose time passed: chunks, pages and index rows go, the store and its file rows stay; two sweepers split the work", async () => {
    const repo = storage.vectorStores;
    const DAY = 86_400_000;
    const expiring = (id: string) => store(id, "proj_x", { expiresAfterDays: 1, expiresAt: T0 + DAY });
    const xfile = (storeId: string, fileId: string, extra: Partial<StoredVectorStoreFile> = {}) =>
      file(storeId, fileId, { projectId: "proj_x", ...extra });
    await repo.create(expiring("vs_exp1"), [xfile("vs_exp1", "file-e1"), xfile("vs_exp1", "file-e2")]);
    await repo.create(expiring("vs_exp2"), []);
    await repo.create(store("vs_keep", "proj_x"), [xfile("vs_keep", "file-k")]);
    const batch = {
      id: "vsfb_exp",
      vectorStoreId: "vs_exp2",
      projectId: "proj_x",
      createdAt: T0,
      cancelledAt: null,
    };
    expect(
      await repo.attachFiles("vs_exp2", [xfile("vs_exp2", "file-e3", { batchId: "vsfb_exp" })], batch),
    ).toBe(true);
    const owner = "w_exp";
    const claimed = (await repo.claimIngestion(owner, T0, LEASE, 100)).filter((j) =>
      ["vs_exp1", "vs_exp2", "vs_keep"].includes(j.vectorStoreId),
    );
    expect(claimed).toHaveLength(4);
    // file-e1 and file-k complete (indexed), file-e2 is half written, file-e3 has not started.
    await repo.addChunks(owner, "vs_exp1", "file-e1", [
      chunk(0, "walrus tusks", vector(6)),
      chunk(1, "walrus naps", vector(7)),
    ]);
    await repo.completeIngestion(owner, "vs_exp1", "file-e1", ["walrus tusks walrus naps"]);
    await repo.addChunks(owner, "vs_exp1", "file-e2", [chunk(0, "walrus half", vector(6))]);
    await repo.addChunks(owner, "vs_keep", "file-k", [chunk(0, "walrus kept", vector(6))]);
    await repo.completeIngestion(owner, "vs_keep", "file-k", ["walrus kept"]);
    const db = storage.database.db;
    const count = async (table: string, storeId: string) =>
      Number(
        (
          await sql<{
            n: number;
          }>`select count(*) as n from ${sql.table(table)} where vector_store_id = ${storeId}`.execute(db)
        ).rows[0]?.n,
      );
    const chunkIds = (
      await sql<{ id: number }>`select id from vector_store_chunks where vector_store_id = 'vs_exp1'`.execute(
        db,
      )
    ).rows.map((r) => Number(r.id));
    expect(chunkIds).toHaveLength(3);
    expect((await repo.usage("proj_x", ["vs_exp1"])).get("vs_exp1")?.usageBytes).toBeGreaterThan(0);

    // Not yet due: untouched.
    await sweepExpiredVectorStores(repo, () => T0 + DAY - 1);
    expect((await repo.get("proj_x", "vs_exp1"))?.expiredAt).toBeNull();
    expect(await count("vector_store_chunks", "vs_exp1")).toBe(3);

    const now = T0 + DAY + 1;
    const due = Number(
      (
        await sql<{
          n: number;
        }>`select count(*) as n from vector_stores where purged_at is null and expires_at <= ${now}`.execute(
          db,
        )
      ).rows[0]?.n,
    );
    const other = await database.open();
    const reclaim = () => storage.database.reclaimSpace();
    try {
      // Two instances sweep at once on Postgres; SQLite has one writer (one instance), so one after the other.
      const sweeps =
        database.name === "postgres"
          ? await Promise.all([
              sweepExpiredVectorStores(repo, () => now, reclaim),
              sweepExpiredVectorStores(other.vectorStores, () => now, reclaim),
            ])
          : [
              await sweepExpiredVectorStores(repo, () => now, reclaim),
              await sweepExpiredVectorStores(other.vectorStores, () => now, reclaim),
            ];
      expect((sweeps[0] ?? 0) + (sweeps[1] ?? 0)).toBe(due);
    } finally {
      await other.close();
    }

    for (const table of ["vector_store_chunks", "vector_store_file_pages"]) {
      expect(await count(table, "vs_exp1"), table).toBe(0);
      expect(await count(table, "vs_keep"), table).toBe(1);
    }
    if (database.name === "sqlite") {
      const ids = sql.join(chunkIds);
      const fts = await sql<{
        n: number;
      }>`select count(*) as n from vector_store_chunks_fts where rowid in (${ids})`.execute(db);
      expect(Number(fts.rows[0]?.n)).toBe(0);
      const vec = await sql<{
        n: number;
      }>`select count(*) as n from vector_store_vec_8 where rowid in (${ids})`.execute(db);
      expect(Number(vec.rows[0]?.n)).toBe(0);
      expect(await storage.chunkIndex.keywordSearch("vs_keep", ["walrus"], null, 5)).toHaveLength(1);
      // The freed pages went back to the file system (a new database has incremental auto-vacuum).
      const pragma = async (name: string) =>
        Number(Object.values((await sql.raw(`pragma ${name}`).execute(db)).rows[0] as object)[0]);
      expect(await pragma("auto_vacuum")).toBe(2);
      expect(await pragma("freelist_count")).toBe(0);
    }
    expect(await storage.chunkIndex.keywordSearch("vs_exp1", ["walrus"], null, 5)).toEqual([]);
    expect(await storage.chunkIndex.vectorSearch("vs_exp1", vector(6), null, 5, { via: "scan" })).toEqual([]);

    // The store and its files remain, expired, with nothing counted; unfinished files and their batch are cancelled.
    expect(await repo.get("proj_x", "vs_exp1")).toMatchObject({ id: "vs_exp1", expiredAt: now });
    expect((await repo.usage("proj_x", ["vs_exp1"])).get("vs_exp1")).toEqual({
      usageBytes: 0,
      counts: { inProgress: 0, completed: 1, failed: 0, cancelled: 1, total: 2 },
    });
    expect((await repo.getFile("proj_x", "vs_exp2", "file-e3"))?.status).toBe("cancelled");
    expect((await repo.getBatch("proj_x", "vs_exp2", "vsfb_exp"))?.cancelledAt).toBe(now);
    expect((await repo.usage("proj_x", ["vs_keep"])).get("vs_keep")?.usageBytes).toBeGreaterThan(0);

    // Ingestion writes nothing more, takes nothing more; attaching is refused; the expiry no longer moves.
    expect(await repo.addChunks(owner, "vs_exp1", "file-e2", [chunk(1, "walrus late", vector(6))])).toBe(
      false,
    );
    expect(await repo.completeIngestion(owner, "vs_exp1", "file-e2", ["late"])).toBe(false);
    expect(
      (await repo.claimIngestion("w_late", now + 2 * LEASE, LEASE, 100)).map((j) => j.vectorStoreId),
    ).not.toContain("vs_exp1");
    expect(await repo.attachFiles("vs_exp1", [xfile("vs_exp1", "file-e4")])).toBe(false);
    expect(await repo.getFile("proj_x", "vs_exp1", "file-e4")).toBeUndefined();
    const touched = await repo.update("proj_x", "vs_exp1", {
      name: "renamed",
      lastActiveAt: now,
      expiresAt: now + DAY,
    });
    expect(touched).toMatchObject({ name: "renamed", expiresAt: T0 + DAY, expiredAt: now });

    // A later sweep finds nothing to do; the expired store can still be deleted.
    expect(await sweepExpiredVectorStores(repo, () => now + DAY)).toBe(0);
    expect(await repo.delete("proj_x", "vs_exp1")).toBe(true);
    expect(await repo.get("proj_x", "vs_exp1")).toBeUndefined();
  });
});
