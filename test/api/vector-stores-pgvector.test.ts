import OpenAI, { toFile } from "openai";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, newAdminKey, startAccessServer } from "../helpers/access.js";
import { HASH_DIMENSIONS, HashEmbeddingBackend, hashEmbedDeployment } from "../helpers/hash-embedder.js";
import { type PgliteServer, startPgliteServer } from "../helpers/pglite-server.js";

const HASH_EMBED = "hash-embed";
const POLL = { pollIntervalMs: 50 };

/** Documents that share some words, so that a query is near several of them to different degrees. */
const DOCS: Record<string, string> = {
  "volcanoes.txt": "Volcanoes erupt when magma rises through the crust. Lava and ash follow the eruption.",
  "geysers.txt": "Geysers erupt hot water when magma heats the ground water beneath the crust.",
  "bakery.md": "A sourdough loaf needs a starter, flour, water and salt. Bake the bread in a hot oven.",
  "pizza.md": "Pizza dough needs flour, water, salt and yeast; bake it in a very hot oven.",
  "orbits.txt": "Satellites orbit the planet; gravity keeps the moon in orbit around the planet.",
  "tides.txt": "The moon's gravity pulls the ocean water, which makes the tides rise and fall.",
  "garden.txt": "Plant tulip bulbs in autumn; water them and they bloom in spring.",
  "sorting.txt": "Quicksort partitions the list around a pivot, then sorts each half.",
};

const QUERIES = [
  "hot water",
  "magma crust",
  "moon gravity",
  "flour salt oven",
  "water",
  "planet orbit pivot",
];

/**
 * End to end on a Postgres with pgvector (PGlite over the wire protocol): one server searches
 * through pgvector (vector_stores.cache_bytes 0, so the index answers every search), another on
 * the same database searches exactly (vector_stores.index: exact); both must answer alike.
 */
describe("vector stores on Postgres with pgvector", () => {
  let pglite: PgliteServer;
  let indexed: AccessServer;
  let exact: AccessServer;
  let client: OpenAI;
  let exactClient: OpenAI;

  beforeAll(async () => {
    pglite = await startPgliteServer();
    const start = (index: "auto" | "exact", concurrency: number) =>
      startAccessServer({
        adminKey: newAdminKey(),
        config: {
          database: pglite.url,
          vector_stores: {
            embedding_model: HASH_EMBED,
            index,
            cache_bytes: 0,
            poll_interval_ms: 50,
            lease_ms: 5_000,
            concurrency,
          },
        },
        extraDeployments: [hashEmbedDeployment(HASH_EMBED, new HashEmbeddingBackend())],
      });
    indexed = await start("auto", 2);
    exact = await start("exact", 0);
    const { key } = await indexed.admin.projectWithKey();
    client = new OpenAI({ baseURL: `${indexed.url}/v1`, apiKey: key.secret, maxRetries: 0 });
    exactClient = new OpenAI({ baseURL: `${exact.url}/v1`, apiKey: key.secret, maxRetries: 0 });
  }, 120_000);
  afterAll(async () => {
    await indexed?.stop();
    await exact?.stop();
    await pglite?.stop();
  });

  it("says at start-up that pgvector answers, or why not", () => {
    const said = indexed.logs.join("\n");
    expect(said).toMatch(
      /pgvector 0\.\d+\.\d+ \(HNSW, cosine, iterative scans\) answers for a store that does not fit/,
    );
    expect(said).toContain("vector_stores.cache_bytes is 0: no store's vectors are kept in memory");
    expect(said).not.toContain("there is no vector index");
    expect(exact.logs.join("\n")).toContain(
      "Vector stores: vector_stores.index is exact. Vector search is exact",
    );
  });

  it("returns the same results and scores through pgvector as the exact search, per store", async () => {
    const files = await Promise.all(
      Object.entries(DOCS).map(async ([name, text]) =>
        client.files.create({ file: await toFile(Buffer.from(text), name), purpose: "assistants" }),
      ),
    );
    const store = await client.vectorStores.create({ name: "kb" });
    const batch = await client.vectorStores.fileBatches.createAndPoll(
      store.id,
      { file_ids: files.map((f) => f.id) },
      POLL,
    );
    expect(batch.file_counts.completed).toBe(files.length);
    // A second store with some of the same files: its chunks never show up in the first's results.
    const other = await client.vectorStores.create({ name: "other" });
    await client.vectorStores.fileBatches.createAndPoll(
      other.id,
      { file_ids: files.slice(0, 4).map((f) => f.id) },
      POLL,
    );

    // The vectors are in pgvector's table of their size, each store's own.
    const indexRows = async () => {
      const db = new pg.Client({ connectionString: pglite.url });
      await db.connect();
      try {
        const result = await db.query<{ store: string; n: string }>(
          `select vector_store_id as store, count(*) as n from vector_store_vec_${HASH_DIMENSIONS} group by 1`,
        );
        return new Map(result.rows.map((r) => [r.store, Number(r.n)]));
      } finally {
        await db.end();
      }
    };
    const before = await indexRows();
    expect(before.get(store.id)).toBeGreaterThanOrEqual(files.length);
    expect(before.get(other.id)).toBeGreaterThanOrEqual(4);

    for (const query of QUERIES) {
      for (const ranker of ["none", "auto"] as const) {
        const ask = (c: OpenAI, id: string) =>
          c.vectorStores.search(id, { query, max_num_results: 5, ranking_options: { ranker } });
        const viaIndex = (await ask(client, store.id)).data;
        const viaExact = (await ask(exactClient, store.id)).data;
        expect(viaIndex.length).toBeGreaterThan(0);
        const summary = (rows: typeof viaIndex) => rows.map((r) => ({ file: r.file_id, score: r.score }));
        expect(summary(viaIndex), `${query} (${ranker})`).toEqual(summary(viaExact));
        expect(viaIndex.every((r) => files.some((f) => f.id === r.file_id))).toBe(true);
      }
    }
    const geysers = files[1]?.id;
    const top = (
      await client.vectorStores.search(store.id, {
        query: "geysers hot water",
        ranking_options: { ranker: "none" },
      })
    ).data[0];
    expect(top?.file_id).toBe(geysers);

    // Detaching a file removes it from what pgvector finds at once.
    await client.vectorStores.files.delete(geysers as string, { vector_store_id: store.id });
    for (const query of QUERIES) {
      const hits = (
        await client.vectorStores.search(store.id, { query, ranking_options: { ranker: "none" } })
      ).data;
      expect(hits.some((r) => r.file_id === geysers)).toBe(false);
      const exactHits = (
        await exactClient.vectorStores.search(store.id, { query, ranking_options: { ranker: "none" } })
      ).data;
      expect(hits.map((r) => [r.file_id, r.score])).toEqual(exactHits.map((r) => [r.file_id, r.score]));
    }
    expect((await indexRows()).get(store.id)).toBeLessThan(before.get(store.id) as number);
    // The other store still has it.
    const theirs = (
      await client.vectorStores.search(other.id, {
        query: "geysers hot water",
        ranking_options: { ranker: "none" },
      })
    ).data;
    expect(theirs[0]?.file_id).toBe(geysers);
  });
});
