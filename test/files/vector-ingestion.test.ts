import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { call } from "../helpers/access.js";
import { type CliServer, startCliServer } from "../helpers/cli-server.js";
import { compiledCli } from "../helpers/compiled-cli.js";
import { startTestServer, TEST_ENGINE, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** Ingestion on a real local embedding model (embed-tiny): its tokenizer cuts the chunks. */
const EMBED = "embed";

/** About `words` words of varied prose. */
function longText(words: number): string {
  const vocabulary = [
    "river",
    "stone",
    "lantern",
    "orchard",
    "signal",
    "harbor",
    "copper",
    "meadow",
    "ferry",
    "quartz",
  ];
  return Array.from({ length: words }, (_, i) => `${vocabulary[(i * 7) % vocabulary.length]}${i % 13}`).join(
    " ",
  );
}

describe("ingestion on a local embedding model", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      config: {
        vector_stores: {
          embedding_model: EMBED,
          rewrite_model: TINY_MODEL,
          poll_interval_ms: 50,
          embed_batch_size: 8,
        },
      },
      extraModels: [
        { id: EMBED, source: inject("embedModelPath"), kind: "embedding", context_size: 1024, load: "start" },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("cuts static chunks by the model's tokens, with the overlap asked, and searches them", async () => {
    const store = await t.client.vectorStores.create({ name: "local" });
    const file = await t.client.files.create({
      file: await toFile(Buffer.from(longText(600)), "long.txt"),
      purpose: "assistants",
    });
    const attached = await t.client.vectorStores.files.createAndPoll(
      store.id,
      {
        file_id: file.id,
        chunking_strategy: {
          type: "static",
          static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 50 },
        },
      },
      { pollIntervalMs: 50 },
    );
    expect(attached.status).toBe("completed");
    // The server's metrics say where the time went, and what was ingested.
    const metrics = (await call(t.url, "GET", "/metrics")).text;
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
    for (const stage of ["extract", "chunk", "embed", "store"])
      expect(
        metric(`switchboard_vector_ingestion_seconds_total\\{stage="${stage}"\\}`),
        stage,
      ).toBeGreaterThan(0);
    expect(metric("switchboard_vector_ingestion_bytes_total")).toBe(Buffer.byteLength(longText(600)));
    const page = await t.client.vectorStores.search(store.id, {
      query: "lantern orchard",
      max_num_results: 50,
    });
    expect(page.data.length).toBeGreaterThan(5);
    expect(metric("switchboard_vector_ingestion_chunks_total")).toBeGreaterThanOrEqual(page.data.length);
    for (const result of page.data) {
      const text = result.content[0]?.text ?? "";
      const counted = await call(t.url, "POST", "/tokenize", { body: { model: EMBED, content: text } });
      // Decoding a window and encoding it again can merge a token at a seam; never more than asked.
      expect(counted.body.tokens.length).toBeLessThanOrEqual(102);
    }
    // The default (auto) strategy: 800-token windows, so far fewer chunks for the same text.
    const auto = await t.client.vectorStores.files.createAndPoll(
      store.id,
      { file_id: file.id },
      { pollIntervalMs: 50 },
    );
    expect(auto.chunking_strategy).toEqual({
      type: "static",
      static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 400 },
    });
    expect(auto.status).toBe("completed");

    // rewrite_query with a rewrite model configured: the model's rewrite is what was searched for.
    const rewritten = await call(t.url, "POST", `/v1/vector_stores/${store.id}/search`, {
      body: { query: "which lantern is near the orchard?", rewrite_query: true, max_num_results: 3 },
    });
    expect(rewritten.status).toBe(200);
    expect(rewritten.body.search_query).toHaveLength(1);
    expect(typeof rewritten.body.search_query[0]).toBe("string");
    expect(rewritten.body.search_query[0].length).toBeGreaterThan(0);
  });
});

describe("ingestion on a local embedding model whose context is smaller than auto's chunks", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      config: { vector_stores: { embedding_model: EMBED, poll_interval_ms: 50, embed_batch_size: 8 } },
      extraModels: [
        { id: EMBED, source: inject("embedModelPath"), kind: "embedding", context_size: 160, load: "start" },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("cuts auto chunks to the model's context (less its framing tokens) and refuses a static size over it", async () => {
    const store = await t.client.vectorStores.create({ name: "small-context" });
    const file = await t.client.files.create({
      file: await toFile(Buffer.from(longText(1200)), "long.txt"),
      purpose: "assistants",
    });
    const auto = await t.client.vectorStores.files.createAndPoll(
      store.id,
      { file_id: file.id },
      { pollIntervalMs: 50 },
    );
    expect(auto).toMatchObject({ status: "completed", last_error: null });
    const strategy = auto.chunking_strategy;
    const max = strategy?.type === "static" ? strategy.static.max_chunk_size_tokens : 0;
    // 160 positions: one kept spare, and the start/end tokens the model's tokenizer adds.
    expect(max).toBeGreaterThanOrEqual(157);
    expect(max).toBeLessThanOrEqual(159);
    expect(auto.chunking_strategy).toEqual({
      type: "static",
      static: { max_chunk_size_tokens: max, chunk_overlap_tokens: Math.floor(max / 2) },
    });
    const page = await t.client.vectorStores.search(store.id, {
      query: "lantern orchard",
      max_num_results: 50,
    });
    expect(page.data.length).toBeGreaterThan(5);
    for (const result of page.data) {
      const text = result.content[0]?.text ?? "";
      const counted = await call(t.url, "POST", "/tokenize", { body: { model: EMBED, content: text } });
      expect(counted.body.tokens.length).toBeLessThanOrEqual(max);
    }

    const refused = await call(t.url, "POST", `/v1/vector_stores/${store.id}/files`, {
      body: {
        file_id: file.id,
        chunking_strategy: {
          type: "static",
          static: { max_chunk_size_tokens: 400, chunk_overlap_tokens: 0 },
        },
      },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.param).toBe("chunking_strategy.static.max_chunk_size_tokens");
    expect(refused.body.error.message).toContain(`takes at most ${max} tokens per input`);
  });
});

describe("ingestion survives kill -9 of its server", () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-ingest-crash-"));
  const running: CliServer[] = [];
  afterAll(async () => {
    await Promise.allSettled(running.map((s) => s.stop()));
  });

  it("resumes a half-ingested file after a restart with every chunk written exactly once", async () => {
    const main = await compiledCli();
    const config = join(dir, "switchboard.yaml");
    const dataDir = join(dir, "data");
    writeFileSync(
      config,
      JSON.stringify({
        port: 0,
        demo_model: false,
        data_dir: dataDir,
        vector_stores: { embedding_model: EMBED, lease_ms: 1500, poll_interval_ms: 50, embed_batch_size: 2 },
        models: [
          {
            id: EMBED,
            kind: "embedding",
            source: inject("embedModelPath"),
            context_size: 1024,
            threads: 1,
            gpu_layers: 0,
            engine: TEST_ENGINE,
          },
        ],
      }),
    );
    const chunksOf = (storeId: string) => {
      const db = new SQLite(join(dataDir, "switchboard.db"), { readonly: true, fileMustExist: true });
      try {
        return db
          .prepare("select seq, text from vector_store_chunks where vector_store_id = ? order by seq")
          .all(storeId) as { seq: number; text: string }[];
      } finally {
        db.close();
      }
    };
    const first = await startCliServer(main, ["--config", config], dir);
    running.push(first);
    let client = new OpenAI({ baseURL: `${first.url}/v1`, apiKey: "none", maxRetries: 2 });
    const file = await client.files.create({
      file: await toFile(Buffer.from(longText(3000)), "big.txt"),
      purpose: "assistants",
    });
    const chunking = {
      type: "static" as const,
      static: { max_chunk_size_tokens: 100, chunk_overlap_tokens: 20 },
    };
    const store = await client.vectorStores.create({ name: "crash" });
    await client.vectorStores.files.create(store.id, { file_id: file.id, chunking_strategy: chunking });
    const deadline = Date.now() + 60_000;
    while (chunksOf(store.id).length < 6 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const before = await client.vectorStores.files.retrieve(file.id, { vector_store_id: store.id });
    expect(before.status).toBe("in_progress");
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    const written = chunksOf(store.id).length;
    expect(written).toBeGreaterThan(0);

    const second = await startCliServer(main, ["--config", config], dir);
    running.push(second);
    client = new OpenAI({ baseURL: `${second.url}/v1`, apiKey: "none", maxRetries: 2 });
    const done = await client.vectorStores.files.poll(store.id, file.id, { pollIntervalMs: 50 });
    expect(done.status).toBe("completed");
    const resumed = chunksOf(store.id);
    expect(resumed.map((c) => c.seq)).toEqual(resumed.map((_, i) => i));

    // The same file ingested in one go, for comparison: the same chunks.
    const fresh = await client.vectorStores.create({ name: "fresh" });
    await client.vectorStores.files.createAndPoll(
      fresh.id,
      { file_id: file.id, chunking_strategy: chunking },
      { pollIntervalMs: 50 },
    );
    expect(resumed.map((c) => c.text)).toEqual(chunksOf(fresh.id).map((c) => c.text));
    expect(resumed.length).toBeGreaterThan(written);
  }, 240_000);
});
