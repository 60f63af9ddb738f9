/**
 * Vector store search benchmark: one store of N chunks with random unit vectors, searched with
 * random queries through the chunk index, every way on the same data: the exact scan read from the
 * database (the reference), the exact scan over the store's copy in memory (what the server does
 * where it fits vector_stores.cache_bytes; also with a filter leaving half the files), sqlite-vec's
 * float index and, evaluated here only, sqlite-vec's int8 and binary quantized vectors as a coarse
 * pass re-scored by cosine — each with its recall@10 against the exact scan — plus the keyword side,
 * the time to load the copy into memory, and the rate chunks are written and indexed at (storage
 * only: no embedding model in the loop).
 *
 *   npm run bench:vectors [-- --sizes 10000,100000 --dims 384 --queries 200 --postgres --skip-quantized]
 *   npm run bench:vectors -- --pglite --skip-sqlite --sizes 10000 --queries 100
 *
 * Storage is opened directly (SQLite in a temporary folder; Postgres in a throwaway schema with
 * --postgres), as the server opens it. Where Postgres has pgvector, its index is measured as well.
 * --pglite measures Postgres on PGlite with its pgvector build instead (started here and served
 * over the wire protocol, as the tests do): single-threaded WASM in this very process, not a real
 * server, so its numbers say how pgvector's index compares with the exact scan, not how fast a
 * Postgres server is. Every query is a fresh random vector: no result is reused.
 * The chunks' words come from a vocabulary of 14, so a keyword query matches almost every chunk
 * (the keyword side's worst case).
 */

import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sql } from "kysely";
import pg from "pg";
import { randomId } from "../src/core/ids.js";
import { float32Bytes, float32FromBytes } from "../src/storage/repositories/vector-ingestion-repository.js";
import type { NewChunk, StoredVectorStoreFile } from "../src/storage/repositories/vector-store-types.js";
import { openStorage, type Storage } from "../src/storage/storage.js";
import { newStoreRow, storedFileRow } from "../test/helpers/vector-store-rows.js";
import { fmt, formatTable, progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10000,100000" },
    dims: { type: "string", default: "384" },
    queries: { type: "string", default: "200" },
    /** Exact scans are slow at 100k: at most this many of the queries run exactly. */
    "exact-queries": { type: "string", default: "50" },
    postgres: { type: "boolean", default: false },
    /** Postgres on PGlite with pgvector, in this process (a dev dependency): see above. */
    pglite: { type: "boolean", default: false },
    "skip-sqlite": { type: "boolean", default: false },
    /** Leave out sqlite-vec's quantized experiments (they are slow: long runs for a steadier p99). */
    "skip-quantized": { type: "boolean", default: false },
    "postgres-url": { type: "string", default: "postgres://postgres@127.0.0.1:5432/test" },
  },
});

const sizes = values.sizes.split(",").map(Number);
const dims = Number(values.dims);
const queries = Number(values.queries);
const exactQueries = Math.min(queries, Number(values["exact-queries"]));
const WORDS =
  "river stone lantern orchard signal harbor copper meadow ferry quartz tide ember willow prism".split(" ");

/** A deterministic generator, so runs compare on the same data. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomUnit(next: () => number): Float32Array {
  const v = new Float32Array(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) {
    // Sum of uniforms: close enough to a normal for direction sampling.
    const x = next() + next() + next() - 1.5;
    v[i] = x;
    norm += x * x;
  }
  norm = Math.sqrt(norm);
  for (let i = 0; i < dims; i++) v[i] = (v[i] as number) / norm;
  return v;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { ms: performance.now() - start, value };
}

function benchFile(storeId: string, i: number, now: number): StoredVectorStoreFile {
  return storedFileRow(storeId, `file-bench${i}`, {
    projectId: "proj_default",
    filename: `bench-${i}.txt`,
    createdAt: now,
  });
}

/** Attaches one more file of `count` chunks and ingests it (its vectors from `next`). */
async function addFile(storage: Storage, storeId: string, index: number, count: number, next: () => number) {
  const file = benchFile(storeId, index, Date.now());
  await storage.vectorStores.attachFiles(storeId, [file]);
  await storage.vectorStores.claimIngestion("w_extra", Date.now(), 3_600_000, 100);
  const chunks: NewChunk[] = [];
  for (let seq = 0; seq < count; seq++)
    chunks.push({ seq, text: "extra chunk", tokens: 2, embedding: randomUnit(next) });
  await storage.vectorStores.addChunks("w_extra", storeId, file.fileId, chunks);
  await storage.vectorStores.completeIngestion("w_extra", storeId, file.fileId, ["extra"]);
}

async function fill(
  storage: Storage,
  size: number,
): Promise<{ storeId: string; writeRate: number; fileIds: string[] }> {
  const storeId = `vs_bench${randomId(8)}`;
  const projectId = "proj_default";
  const fileCount = Math.max(1, Math.ceil(size / 5000));
  const now = Date.now();
  const files = Array.from({ length: fileCount }, (_, i) => benchFile(storeId, i, now));
  await storage.vectorStores.create(
    newStoreRow(storeId, {
      projectId,
      name: "bench",
      embeddingModel: "bench",
      lastActiveAt: now,
      createdAt: now,
    }),
    files,
  );
  const owner = "w_bench";
  await storage.vectorStores.claimIngestion(owner, Date.now(), 3_600_000, fileCount + 10);
  const next = rng(size);
  const started = performance.now();
  let written = 0;
  for (const file of files) {
    const count = Math.min(5000, size - written);
    for (let at = 0; at < count; at += 500) {
      const chunks: NewChunk[] = [];
      for (let seq = at; seq < Math.min(count, at + 500); seq++) {
        const text = Array.from({ length: 40 }, () => WORDS[Math.floor(next() * WORDS.length)]).join(" ");
        chunks.push({ seq, text, tokens: 40, embedding: randomUnit(next) });
      }
      await storage.vectorStores.addChunks(owner, storeId, file.fileId, chunks);
    }
    await storage.vectorStores.completeIngestion(owner, storeId, file.fileId, ["bench"]);
    written += count;
    progress(`  ${written}/${size} chunks written`);
  }
  return {
    storeId,
    writeRate: size / ((performance.now() - started) / 1000),
    fileIds: files.map((f) => f.fileId),
  };
}

/** Hits of a search, and the share of the exact scan's top 10 among them. */
function recallOf(hits: readonly { chunkId: number }[], truth: readonly number[]): number {
  const wanted = new Set(truth);
  return hits.filter((h) => wanted.has(h.chunkId)).length / Math.max(1, wanted.size);
}

/**
 * sqlite-vec's quantized vectors, evaluated here only (not used by the server): int8 (each float
 * scaled to a byte, cosine) and binary (one bit per float, hamming) copies of the store's vectors,
 * searched for `k` candidates that are then re-scored by cosine over their float vectors.
 */
async function quantizedTables(storage: Storage, storeId: string): Promise<string[]> {
  const db = storage.database.db;
  const made: string[] = [];
  // int8 with cosine where vec0 takes it, else L2 (the same order for unit vectors).
  const tables = [
    [
      "bench_int8",
      [`int8[${dims}] distance_metric=cosine`, `int8[${dims}]`],
      sql`vec_quantize_int8(embedding, 'unit')`,
    ],
    ["bench_bit", [`bit[${dims}]`], sql`vec_quantize_binary(embedding)`],
  ] as const;
  for (const [name, columns, value] of tables) {
    for (const column of columns) {
      try {
        await sql`create virtual table ${sql.table(name)} using vec0(
          vector_store_id text partition key, embedding ${sql.raw(column)})`.execute(db);
        await sql`insert into ${sql.table(name)} (rowid, vector_store_id, embedding)
          select id, vector_store_id, ${value} from vector_store_chunks where vector_store_id = ${storeId}`.execute(
          db,
        );
        made.push(name);
        progress(`  ${name}: ${column}`);
        break;
      } catch (err) {
        await sql`drop table if exists ${sql.table(name)}`.execute(db);
        progress(`  ${name} as ${column}: not measured (${(err as Error).message})`);
      }
    }
  }
  return made;
}

async function quantizedSearch(
  storage: Storage,
  table: string,
  storeId: string,
  query: Float32Array,
  k: number,
): Promise<{ chunkId: number; score: number }[]> {
  const db = storage.database.db;
  const quantized =
    table === "bench_int8"
      ? sql`vec_quantize_int8(${float32Bytes(query)}, 'unit')`
      : sql`vec_quantize_binary(${float32Bytes(query)})`;
  const candidates = await sql<{ id: number }>`select rowid as id from ${sql.table(table)}
    where embedding match ${quantized} and k = ${sql.raw(String(k))} and vector_store_id = ${storeId}`.execute(
    db,
  );
  const rows = await db
    .selectFrom("vector_store_chunks")
    .select(["id", "embedding"])
    .where(
      "id",
      "in",
      candidates.rows.map((r) => Number(r.id)),
    )
    .execute();
  let qNorm = 0;
  for (const x of query) qNorm += x * x;
  const scored = rows.map((row) => {
    const v = float32FromBytes(row.embedding as Uint8Array);
    let dot = 0;
    let norm = 0;
    for (let i = 0; i < v.length; i++) {
      dot += (v[i] as number) * (query[i] as number);
      norm += (v[i] as number) ** 2;
    }
    return { chunkId: Number(row.id), score: dot / Math.sqrt(norm * qNorm) };
  });
  return scored.sort((a, b) => b.score - a.score).slice(0, 10);
}

/** Which way Postgres answers pgvector's search of the store: its HNSW index, or a sort of the store's rows. */
async function pgvectorPlan(storage: Storage, storeId: string, probe: Float32Array): Promise<string> {
  const pgvector = storage.database.pgvector;
  if (!pgvector) return "-";
  const plan = await storage.database.db.transaction().execute(async (trx) => {
    if (pgvector.iterativeScan) await sql`set local hnsw.iterative_scan = relaxed_order`.execute(trx);
    const vector = `[${Array.from(probe).join(",")}]`;
    const result = await sql<
      Record<string, string>
    >`explain select id from ${sql.table(`vector_store_vec_${dims}`)}
      where vector_store_id = ${storeId}
      order by embedding operator(${sql.id(pgvector.schema)}.<=>) ${vector}::${sql.id(pgvector.schema)}.vector limit 10`.execute(
      trx,
    );
    return result.rows.map((r) => Object.values(r)[0]).join("\n");
  });
  progress(`  pgvector ${pgvector.version} plan:\n${plan}`);
  return plan.includes("_hnsw") ? "hnsw" : "sorted exactly";
}

async function measure(storage: Storage, name: string, size: number): Promise<string[][]> {
  progress(`${name}: filling ${size} chunks of ${dims} dims`);
  const { storeId, writeRate, fileIds } = await fill(storage, size);
  const next = rng(7);
  const probes = Array.from({ length: queries }, () => randomUnit(next));
  const index = storage.chunkIndex;
  const hasIndex = index.vectorIndex !== "exact";
  // PGlite runs no autovacuum: the statistics a server's autovacuum gathers after the bulk insert.
  if (name === "pglite") await sql`analyze`.execute(storage.database.db);
  // pgvector answers once it knows its tables hold every chunk (a no-op on a fresh database).
  await index.prepareIndex?.();
  // Half the files: a search with attribute filters that leave half the store.
  const someFiles = fileIds.slice(0, Math.max(1, Math.floor(fileIds.length / 2)));
  const quantized =
    index.vectorIndex === "sqlite-vec" && !values["skip-quantized"]
      ? await quantizedTables(storage, storeId)
      : [];
  const kinds: { what: string; run: (probe: Float32Array) => Promise<{ chunkId: number }[]> }[] = [
    {
      what: "vector in memory (exact)",
      run: (probe) => index.vectorSearch(storeId, probe, null, 10, { via: "memory" }),
    },
  ];
  if (hasIndex)
    kinds.push({
      what:
        index.vectorIndex === "pgvector"
          ? `vector pgvector (${await pgvectorPlan(storage, storeId, probes[0] as Float32Array)})`
          : "vector sqlite-vec float",
      run: (probe) => index.vectorSearch(storeId, probe, null, 10, { via: "index" }),
    });
  for (const table of quantized)
    for (const k of table === "bench_int8" ? [100] : [1000, 4096])
      kinds.push({
        what: `vector sqlite-vec ${table.slice(6)} k=${k} + rescore`,
        run: (probe) => quantizedSearch(storage, table, storeId, probe, k),
      });
  // The first search after a change loads the store's vectors into memory.
  const load = await timed(() =>
    index.vectorSearch(storeId, probes[0] as Float32Array, null, 10, { via: "memory" }),
  );
  const loadRow = [name, String(size), `load into memory: ${fmt(load.ms, 0)} ms`, "", "", "", ""];
  progress(`  ${loadRow.join(" | ")} (${JSON.stringify(index.memoryStats())})`);
  // One warm-up of each, not counted.
  await index.vectorSearch(storeId, probes[0] as Float32Array, null, 10, { via: "scan" });
  for (const kind of kinds) await kind.run(probes[0] as Float32Array);
  const exactTimes: number[] = [];
  const times = kinds.map(() => [] as number[]);
  const recalls = kinds.map(() => 0);
  const filteredTimes: number[] = [];
  let filteredRecall = 0;
  const keywordTimes: number[] = [];
  // pgvector: the filtered search is its exact ordering of the files' rows in the database.
  const filteredVia = index.vectorIndex === "pgvector" ? "index" : "memory";
  for (const [i, probe] of probes.entries()) {
    let truth: number[] | undefined;
    if (i < exactQueries) {
      const exact = await timed(() => index.vectorSearch(storeId, probe, null, 10, { via: "scan" }));
      exactTimes.push(exact.ms);
      truth = exact.value.map((h) => h.chunkId);
    }
    for (const [j, kind] of kinds.entries()) {
      const result = await timed(() => kind.run(probe));
      times[j]?.push(result.ms);
      if (truth) recalls[j] = (recalls[j] as number) + recallOf(result.value, truth);
    }
    const filtered = await timed(() =>
      index.vectorSearch(storeId, probe, someFiles, 10, { via: filteredVia }),
    );
    filteredTimes.push(filtered.ms);
    if (i < exactQueries) {
      const exact = await index.vectorSearch(storeId, probe, someFiles, 10, { via: "scan" });
      filteredRecall += recallOf(
        filtered.value,
        exact.map((h) => h.chunkId),
      );
    }
    const terms = [WORDS[(i * 37) % WORDS.length] as string, WORDS[(i * 101) % WORDS.length] as string];
    keywordTimes.push((await timed(() => index.keywordSearch(storeId, terms, null, 50))).ms);
  }
  const row = (what: string, samples: number[], recall: string) => {
    const sorted = [...samples].sort((a, b) => a - b);
    return [
      name,
      String(size),
      what,
      String(samples.length),
      fmt(percentile(sorted, 0.5), 2),
      fmt(percentile(sorted, 0.99), 2),
      recall,
    ];
  };
  const rows = [row("vector exact scan (database)", exactTimes, "1 (reference)")];
  for (const [j, kind] of kinds.entries())
    rows.push(row(kind.what, times[j] as number[], fmt((recalls[j] as number) / exactQueries, 3)));
  rows.push(
    row(
      `vector ${filteredVia === "index" ? "pgvector (exact order)" : "in memory"}, ${someFiles.length}/${fileIds.length} files`,
      filteredTimes,
      fmt(filteredRecall / exactQueries, 3),
    ),
  );
  rows.push(row("keyword", keywordTimes, "-"));
  rows.push(loadRow);
  // A file more (1% of the store) completes: the next search catches the copy up.
  await addFile(storage, storeId, fileIds.length, Math.max(1, Math.floor(size / 100)), next);
  const reload = await timed(() =>
    index.vectorSearch(storeId, probes[1] as Float32Array, null, 10, { via: "memory" }),
  );
  rows.push([
    name,
    String(size),
    `catch up after a file of ${Math.floor(size / 100)} chunks: ${fmt(reload.ms, 0)} ms`,
    "",
    "",
    "",
    "",
  ]);
  rows.push([name, String(size), `write + index: ${fmt(writeRate, 0)} chunks/s`, "", "", "", ""]);
  for (const row of rows) progress(`  ${row.join(" | ")}`);
  return rows;
}

async function main(): Promise<void> {
  const rows: string[][] = [];
  const dir = mkdtempSync(join(tmpdir(), "sb-bench-vectors-"));
  try {
    for (const size of sizes) {
      if (!values["skip-sqlite"]) {
        const storage = await openStorage({ url: join(dir, `bench-${size}.db`) });
        try {
          rows.push(...(await measure(storage, "sqlite", size)));
        } finally {
          await storage.close();
        }
      }
      if (values.pglite) {
        const { startPgliteServer } = await import("../test/helpers/pglite-server.js");
        const server = await startPgliteServer();
        const storage = await openStorage({ url: server.url, poolSize: 4 });
        try {
          rows.push(...(await measure(storage, "pglite", size)));
        } finally {
          await storage.close();
          await server.stop();
        }
      }
      if (values.postgres) {
        const schema = `bench_${randomId(8).toLowerCase()}`;
        const url = values["postgres-url"];
        const storage = await openStorage({ url, schema, poolSize: 4 });
        try {
          rows.push(...(await measure(storage, "postgres", size)));
        } finally {
          await storage.close();
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          await client.query(`drop schema if exists ${schema} cascade`);
          await client.end();
        }
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  console.log(formatTable(["db", "chunks", "search", "queries", "p50 ms", "p99 ms", "recall@10"], rows));
  const at = (db: string, size: number, what: string) =>
    rows.find((r) => r[0] === db && r[1] === String(size) && r[2]?.startsWith(what));
  const largest = Math.max(...sizes);
  const memory = at("sqlite", largest, "vector in memory (exact)");
  const indexed = at("sqlite", largest, "vector sqlite-vec float");
  const pgMemory = at("postgres", largest, "vector in memory (exact)");
  const pgScan = at("postgres", largest, "vector exact scan");
  const pgvector = at("postgres", largest, "vector pgvector") ?? at("pglite", largest, "vector pgvector");
  console.log(
    `summary vector-search: at ${largest} chunks × ${dims} dims, SQLite in memory p99 ${memory?.[5] ?? "-"} ms (recall@10 ${memory?.[6] ?? "-"}) vs sqlite-vec p99 ${indexed?.[5] ?? "-"} ms; Postgres in memory p99 ${pgMemory?.[5] ?? "-"} ms vs database scan p99 ${pgScan?.[5] ?? "-"} ms; pgvector (${pgvector?.[0] ?? "-"}) p99 ${pgvector?.[5] ?? "-"} ms (recall@10 ${pgvector?.[6] ?? "-"})`,
  );
}

await main();
