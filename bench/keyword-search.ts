/**
 * Postgres keyword search benchmark: a store of N chunks of 250 made-up words each (Zipf-like over
 * 20,000 words: ~1.1 KB of text and a ~2.2 KB tsvector kept out of line, as a real chunk's is; real
 * 800-token chunks are larger still), next to a second store sharing the words, searched through
 * the chunk index for a word in ~90% of the chunks, one in ~40%, a rare one and a two-word mix —
 * and, for comparison, with every match ranked (what keyword search did before it bounded its
 * candidates), with the share of that full ranking's top 200 the chunk index returned.
 *
 *   npm run bench:keywords [-- --size 100000 --queries 20 --keep]
 *   node build/bench/keyword-search.js --schema bench_kw_xxxx   (search an existing seeded schema)
 *
 * With --keep the throwaway schema is left in place (its name is printed) so a later build can be
 * measured on the same data with --schema; drop it afterwards (`drop schema … cascade`).
 */

import { parseArgs } from "node:util";
import { sql } from "kysely";
import pg from "pg";
import { randomId } from "../src/core/ids.js";
import type { NewChunk, StoredVectorStoreFile } from "../src/storage/repositories/vector-store-types.js";
import { openStorage, type Storage } from "../src/storage/storage.js";
import { newStoreRow, storedFileRow } from "../test/helpers/vector-store-rows.js";
import { fmt, formatTable, percentile, progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "100000" },
    /** Chunks of the second store (same words): the GIN index holds both stores. */
    other: { type: "string", default: "20000" },
    queries: { type: "string", default: "20" },
    schema: { type: "string" },
    keep: { type: "boolean", default: false },
    "postgres-url": { type: "string", default: "postgres://postgres@127.0.0.1:5432/test" },
  },
});

const STORE = "vs_kwbench";
const OTHER = "vs_kwother";
const CHUNK_WORDS = 250;
/** Words placed on purpose, each with the share of chunks it appears in. */
const PLANTED = { harbor: 0.9, lantern: 0.4, quartz: 0.0002 } as const;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A pronounceable made-up word per index, so English stemming leaves them alone. */
function word(i: number): string {
  const c = "bdfgklmnprstvz";
  const v = "aeiou";
  let out = "";
  let n = i + 1;
  while (n > 0) {
    out += (c[n % c.length] as string) + (v[Math.floor(n / c.length) % v.length] as string);
    n = Math.floor(n / (c.length * v.length));
  }
  return out;
}

function chunkText(next: () => number): string {
  const words: string[] = [];
  for (let i = 0; i < CHUNK_WORDS; i++) {
    // Zipf-like over 20,000 words: small indexes far more often.
    words.push(word(Math.floor(20_000 ** next()) - 1));
  }
  for (const [planted, share] of Object.entries(PLANTED)) {
    if (next() >= share) continue;
    const times = 1 + Math.floor(next() * 3);
    for (let t = 0; t < times; t++) words[Math.floor(next() * words.length)] = planted;
  }
  return words.join(" ");
}

function benchFile(storeId: string, i: number): StoredVectorStoreFile {
  return storedFileRow(storeId, `file-kw${i}`, { projectId: "proj_default", filename: `kw-${i}.txt` });
}

async function fill(storage: Storage, storeId: string, size: number, seed: number): Promise<void> {
  const fileCount = Math.max(1, Math.ceil(size / 5000));
  const files = Array.from({ length: fileCount }, (_, i) => benchFile(storeId, i));
  await storage.vectorStores.create(
    newStoreRow(storeId, { projectId: "proj_default", name: "keyword bench", embeddingModel: "bench" }),
    files,
  );
  const owner = `w_${storeId}`;
  await storage.vectorStores.claimIngestion(owner, Date.now(), 3_600_000, fileCount + 10);
  const next = rng(seed);
  let written = 0;
  for (const file of files) {
    const count = Math.min(5000, size - written);
    for (let at = 0; at < count; at += 500) {
      const chunks: NewChunk[] = [];
      for (let seq = at; seq < Math.min(count, at + 500); seq++)
        chunks.push({
          seq,
          text: chunkText(next),
          tokens: CHUNK_WORDS,
          embedding: new Float32Array([1, 0, 0, 0]),
        });
      await storage.vectorStores.addChunks(owner, storeId, file.fileId, chunks);
    }
    await storage.vectorStores.completeIngestion(owner, storeId, file.fileId, ["bench"]);
    written += count;
    progress(`  ${storeId}: ${written}/${size} chunks written`);
  }
}

/** Every match of the store ranked by ts_rank_cd: the reference, and the cost of not bounding. */
async function rankAll(storage: Storage, terms: readonly string[]): Promise<{ chunkId: number }[]> {
  const query = terms.map((t) => `'${t}'`).join(" | ");
  const rows = await sql<{ id: number }>`
    select id, ts_rank_cd(text_search, q) as score
    from vector_store_chunks, to_tsquery('english', ${query}) q
    where vector_store_id = ${STORE} and searchable = 1 and text_search @@ q
    order by score desc, id limit 200`.execute(storage.database.db);
  return rows.rows.map((r) => ({ chunkId: Number(r.id) }));
}

async function main(): Promise<void> {
  const url = values["postgres-url"];
  const schema = values.schema ?? `bench_kw_${randomId(8).toLowerCase()}`;
  const storage = await openStorage({ url, schema, poolSize: 2 });
  const db = storage.database.db;
  try {
    if (!values.schema) {
      await fill(storage, STORE, Number(values.size), 1);
      await fill(storage, OTHER, Number(values.other), 2);
      await sql`analyze vector_store_chunks`.execute(db);
    }
    const counts = await sql<{ n: string }>`select count(*) as n from vector_store_chunks
      where vector_store_id = ${STORE}`.execute(db);
    const size = Number(counts.rows[0]?.n);
    const cases: [string, string[]][] = [
      ["common (harbor, ~90%)", ["harbor"]],
      ["half (lantern, ~40%)", ["lantern"]],
      ["rare (quartz, ~0.02%)", ["quartz"]],
      ["two words (harbor quartz)", ["harbor", "quartz"]],
    ];
    const rows: string[][] = [];
    const searches = {
      // Every match ranked: the query keyword search ran before it ranked a bounded candidate set.
      "all matches ranked": (terms: string[]) => rankAll(storage, terms),
      "chunk index": (terms: string[]) => storage.chunkIndex.keywordSearch(STORE, terms, null, 200),
    };
    for (const [what, terms] of cases) {
      const reference = await rankAll(storage, terms);
      for (const [how, search] of Object.entries(searches)) {
        await search(terms); // warm-up, not counted
        const times: number[] = [];
        let hits: { chunkId: number }[] = [];
        for (let i = 0; i < Number(values.queries); i++) {
          const start = performance.now();
          hits = await search(terms);
          times.push(performance.now() - start);
        }
        // Share of the full ranking's top 200 this one returned (1: the same chunks).
        const wanted = new Set(reference.map((h) => h.chunkId));
        const shared = hits.filter((h) => wanted.has(h.chunkId)).length / Math.max(1, wanted.size);
        rows.push([
          String(size),
          what,
          how,
          String(hits.length),
          fmt(shared, 2),
          String(times.length),
          fmt(percentile(times, 50), 1),
          fmt(percentile(times, 99), 1),
        ]);
        progress(`  ${rows.at(-1)?.join(" | ")}`);
      }
    }
    console.log(
      formatTable(["chunks", "query", "search", "hits", "same top", "runs", "p50 ms", "p99 ms"], rows),
    );
    console.log(`schema: ${schema}${values.keep || values.schema ? " (kept)" : ""}`);
  } finally {
    await storage.close();
    if (!values.keep && !values.schema) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    }
  }
}

await main();
