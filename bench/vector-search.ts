/**
 * Vector store search benchmark: one store of N chunks with random unit vectors, searched with
 * random queries through the chunk index — sqlite-vec's index against the exact scan on the same
 * data — plus the keyword side, and the recall@10 of the index against the exact scan. Also the
 * rate chunks are written and indexed at (storage only: no embedding model in the loop).
 *
 *   npm run bench:vectors [-- --sizes 10000,100000 --dims 384 --queries 200 --postgres]
 *
 * Storage is opened directly (SQLite in a temporary folder; Postgres in a throwaway schema with
 * --postgres), as the server opens it. Every query is a fresh random vector, so no cache helps.
 */
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { randomId } from "../src/core/ids.js";
import { NO_LIMITS } from "../src/storage/repositories/types.js";
import type { NewChunk } from "../src/storage/repositories/vector-store-types.js";
import { openStorage, type Storage } from "../src/storage/storage.js";
import { fmt, formatTable, progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10000,100000" },
    dims: { type: "string", default: "384" },
    queries: { type: "string", default: "200" },
    /** Exact scans are slow at 100k: at most this many of the queries run exactly. */
    "exact-queries": { type: "string", default: "50" },
    postgres: { type: "boolean", default: false },
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

async function fill(storage: Storage, size: number): Promise<{ storeId: string; writeRate: number }> {
  const storeId = `vs_bench${randomId(8)}`;
  const projectId = "proj_default";
  const fileCount = Math.max(1, Math.ceil(size / 5000));
  const now = Date.now();
  const files = Array.from({ length: fileCount }, (_, i) => ({
    vectorStoreId: storeId,
    fileId: `file-bench${i}`,
    projectId,
    batchId: null,
    filename: `bench-${i}.txt`,
    status: "in_progress" as const,
    lastError: null,
    chunking: { maxChunkSizeTokens: 800, chunkOverlapTokens: 400 },
    attributes: null,
    usageBytes: 0,
    caller: { keyId: null, allowedModels: null, keyLimits: NO_LIMITS, projectLimits: NO_LIMITS },
    createdAt: now,
  }));
  await storage.vectorStores.create(
    {
      id: storeId,
      projectId,
      name: "bench",
      description: null,
      metadata: null,
      embeddingModel: "bench",
      expiresAfterDays: null,
      expiresAt: null,
      lastActiveAt: now,
      createdAt: now,
    },
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
  return { storeId, writeRate: size / ((performance.now() - started) / 1000) };
}

async function measure(storage: Storage, name: string, size: number): Promise<string[][]> {
  progress(`${name}: filling ${size} chunks of ${dims} dims`);
  const { storeId, writeRate } = await fill(storage, size);
  const next = rng(7);
  const probes = Array.from({ length: queries }, () => randomUnit(next));
  const index = storage.chunkIndex;
  const hasIndex = index.vectorIndex !== "exact";
  const exactTimes: number[] = [];
  const indexTimes: number[] = [];
  const keywordTimes: number[] = [];
  let recallSum = 0;
  // One warm-up of each, not counted.
  await index.vectorSearch(storeId, probes[0] as Float32Array, null, 10, { exact: true });
  if (hasIndex) await index.vectorSearch(storeId, probes[0] as Float32Array, null, 10);
  for (const [i, probe] of probes.entries()) {
    let exactIds: number[] | undefined;
    if (i < exactQueries) {
      const exact = await timed(() => index.vectorSearch(storeId, probe, null, 10, { exact: true }));
      exactTimes.push(exact.ms);
      exactIds = exact.value.map((h) => h.chunkId);
    }
    if (hasIndex) {
      const indexed = await timed(() => index.vectorSearch(storeId, probe, null, 10));
      indexTimes.push(indexed.ms);
      if (exactIds) {
        const truth = new Set(exactIds);
        recallSum += indexed.value.filter((h) => truth.has(h.chunkId)).length / Math.max(1, truth.size);
      }
    }
    const terms = [WORDS[(i * 37) % WORDS.length] as string, WORDS[(i * 101) % WORDS.length] as string];
    keywordTimes.push((await timed(() => index.keywordSearch(storeId, terms, null, 50))).ms);
  }
  const row = (what: string, times: number[], recall: string) => {
    const sorted = [...times].sort((a, b) => a - b);
    return [
      name,
      String(size),
      what,
      String(times.length),
      fmt(percentile(sorted, 0.5), 2),
      fmt(percentile(sorted, 0.99), 2),
      recall,
    ];
  };
  const rows = [row("vector exact scan", exactTimes, "1 (reference)")];
  if (hasIndex) rows.push(row(`vector ${index.vectorIndex}`, indexTimes, fmt(recallSum / exactQueries, 3)));
  rows.push(row("keyword", keywordTimes, "-"));
  rows.push([name, String(size), `write + index: ${fmt(writeRate, 0)} chunks/s`, "", "", "", ""]);
  for (const row of rows) progress(`  ${row.join(" | ")}`);
  return rows;
}

async function main(): Promise<void> {
  const rows: string[][] = [];
  const dir = mkdtempSync(join(tmpdir(), "sb-bench-vectors-"));
  try {
    for (const size of sizes) {
      const storage = await openStorage({ url: join(dir, `bench-${size}.db`) });
      try {
        rows.push(...(await measure(storage, "sqlite", size)));
      } finally {
        await storage.close();
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
  const at = (size: number, what: string) =>
    rows.find((r) => r[0] === "sqlite" && r[1] === String(size) && r[2]?.startsWith(what));
  const largest = Math.max(...sizes);
  const indexed = at(largest, "vector sqlite-vec");
  const exact = at(largest, "vector exact");
  console.log(
    `summary vector-search: at ${largest} chunks × ${dims} dims on SQLite, sqlite-vec p99 ${indexed?.[5] ?? "-"} ms (recall@10 ${indexed?.[6] ?? "-"}) vs exact scan p99 ${exact?.[5] ?? "-"} ms`,
  );
}

await main();
