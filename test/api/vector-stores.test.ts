import { sql } from "kysely";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, call, newAdminKey, startAccessServer } from "../helpers/access.js";
import { makeDocx, makePdf } from "../helpers/document-fixtures.js";
import { HASH_DIMENSIONS, HashEmbeddingBackend, hashEmbedDeployment } from "../helpers/hash-embedder.js";
import { expectMatchesSchema, prepareSpecValidators } from "../helpers/openapi.js";
import { serverDatabases } from "../helpers/shared-database.js";
import { TINY_MODEL } from "../helpers/test-server.js";

const databases = await serverDatabases();
const HASH_EMBED = "hash-embed";
const DAY = 86_400_000;
const POLL = { pollIntervalMs: 50 };

/** Small documents whose answers are known: each names its subject with words no other shares. */
const DOCS = {
  "volcanoes.txt":
    "Volcanoes erupt when magma rises through the crust. Lava flows and ash clouds follow the eruption.",
  "bakery.md":
    "# Sourdough\n\nA sourdough loaf needs a starter, flour, water and salt. Bake the bread in a hot oven.",
  "orbits.json": JSON.stringify({
    topic: "orbits",
    text: "Satellites orbit the planet; gravity keeps the moon in orbit.",
  }),
  "sorting.py":
    "def quicksort(items):\n    # partition the list around a pivot, then sort each half\n    return items\n",
  "garden.html":
    "<html><body><h1>Garden tulips</h1><p>Plant tulip bulbs in autumn; they bloom in spring.</p><script>ignored()</script></body></html>",
} as const;

describe.each(databases)("vector stores on $name", (database) => {
  let server: AccessServer;
  let client: OpenAI;
  let other: OpenAI;
  let mine: { key: { secret: string } };
  let skewMs = 0;
  const embedder = new HashEmbeddingBackend();

  beforeAll(async () => {
    prepareSpecValidators(
      "VectorStoreObject",
      "VectorStoreFileObject",
      "VectorStoreFileBatchObject",
      "VectorStoreSearchResultsPage",
      "VectorStoreFileContentResponse",
      "Response",
    );
    await database.setup();
    server = await startAccessServer({
      adminKey: newAdminKey(),
      config: {
        ...database.config,
        vector_stores: { embedding_model: HASH_EMBED, poll_interval_ms: 50, lease_ms: 5_000, concurrency: 2 },
      },
      now: () => Date.now() + skewMs,
      extraDeployments: [hashEmbedDeployment(HASH_EMBED, embedder)],
    });
    mine = await server.admin.projectWithKey();
    const theirs = await server.admin.projectWithKey();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: mine.key.secret, maxRetries: 0 });
    other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: theirs.key.secret, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
    await database.drop();
  });

  const upload = async (name: string, content: string | Buffer) =>
    client.files.create({ file: await toFile(Buffer.from(content), name), purpose: "assistants" });

  it("says at start-up how it searches vectors: exactly in memory, then sqlite-vec or (Postgres) the database", () => {
    const said = server.logs.join("\n");
    expect(said).toContain(
      "each store's vectors are searched in a copy in memory (vector_stores.cache_bytes: 512 MiB",
    );
    if (database.name === "postgres") {
      expect(said).toMatch(/on Postgres there is no vector index \(pgvector is (not installed|installed)/);
      expect(said).toContain("a store that does not fit is read from the database for every search");
    } else expect(said).toContain("sqlite-vec answers for a store that does not fit");
  });

  it("creates a store, ingests files with the SDK's uploadAndPoll helpers, and searches them", async () => {
    const store = await client.vectorStores.create({ name: "kb", metadata: { team: "docs" } });
    expectMatchesSchema(store, "VectorStoreObject");
    expect(store).toMatchObject({ object: "vector_store", name: "kb", status: "completed", usage_bytes: 0 });
    expect(store.file_counts).toEqual({ in_progress: 0, completed: 0, failed: 0, cancelled: 0, total: 0 });

    const single = await client.vectorStores.files.uploadAndPoll(
      store.id,
      await toFile(Buffer.from(DOCS["volcanoes.txt"]), "volcanoes.txt"),
      POLL,
    );
    expectMatchesSchema(single, "VectorStoreFileObject");
    expect(single).toMatchObject({ status: "completed", last_error: null, vector_store_id: store.id });
    expect(single.chunking_strategy).toEqual({
      type: "static",
      static: { max_chunk_size_tokens: 800, chunk_overlap_tokens: 400 },
    });

    const rest = Object.entries(DOCS).filter(([name]) => name !== "volcanoes.txt");
    const batch = await client.vectorStores.fileBatches.uploadAndPoll(
      store.id,
      { files: await Promise.all(rest.map(([name, text]) => toFile(Buffer.from(text), name))) },
      POLL,
    );
    expectMatchesSchema(batch, "VectorStoreFileBatchObject");
    expect(batch).toMatchObject({ object: "vector_store.files_batch", status: "completed" });
    expect(batch.file_counts).toEqual({ in_progress: 0, completed: 4, failed: 0, cancelled: 0, total: 4 });

    const after = await client.vectorStores.retrieve(store.id);
    expect(after.file_counts).toMatchObject({ completed: 5, total: 5 });
    expect(after.usage_bytes).toBeGreaterThan(0);
    expect(after.status).toBe("completed");

    const answers: Record<string, string> = {
      "when does magma erupt": "volcanoes.txt",
      "sourdough starter flour": "bakery.md",
      "moon orbit gravity": "orbits.json",
      "quicksort pivot partition": "sorting.py",
      "tulip bulbs autumn": "garden.html",
    };
    for (const [query, filename] of Object.entries(answers)) {
      const page = await client.vectorStores.search(store.id, { query, max_num_results: 3 });
      expect(page.data[0]?.filename, query).toBe(filename);
      expect(page.data[0]?.score).toBeGreaterThan(0.5);
      expect(page.data[0]?.score).toBeLessThanOrEqual(1);
    }
    // The whole page on the wire (the SDK's page object keeps only data).
    const raw = await call(server.url, "POST", `/v1/vector_stores/${store.id}/search`, {
      key: mine.key.secret,
      body: { query: "magma", max_num_results: 2 },
    });
    expectMatchesSchema(raw.body, "VectorStoreSearchResultsPage");
    expect(raw.body).toMatchObject({ search_query: ["magma"], has_more: false, next_page: null });
    // The HTML was read as text: its script is gone, its words are there.
    const garden = (await client.vectorStores.search(store.id, { query: "tulip" })).data[0];
    expect(garden?.content[0]?.text).toContain("Plant tulip bulbs in autumn");
    expect(garden?.content[0]?.text).not.toContain("ignored()");
    // Several queries at once, and a threshold that keeps only the best.
    const both = await client.vectorStores.search(store.id, {
      query: ["magma", "sourdough"],
      max_num_results: 5,
    });
    expect(both.data.map((d) => d.filename)).toEqual(expect.arrayContaining(["volcanoes.txt", "bakery.md"]));
    const strict = await client.vectorStores.search(store.id, {
      query: "sourdough",
      ranking_options: { score_threshold: 0.99 },
    });
    expect(strict.data.map((d) => d.filename)).toEqual(["bakery.md"]);
  });

  it("reads PDF and DOCX; a corrupt PDF ends failed with last_error while the others complete", async () => {
    const store = await client.vectorStores.create({ name: "docs" });
    const pdf = await upload(
      "report.pdf",
      makePdf(["Quarterly revenue grew", "Penguins live in Antarctica"]),
    );
    const docx = await upload(
      "memo.docx",
      await makeDocx(["The memo mentions giraffes.", "And zebras too."]),
    );
    const broken = await upload("broken.pdf", Buffer.from("%PDF-1.4\nthis is not really a pdf"));
    const binary = await upload("image.bin", Buffer.from([0, 1, 2, 3, 255, 0, 7]));
    const batch = await client.vectorStores.fileBatches.createAndPoll(
      store.id,
      { file_ids: [pdf.id, docx.id, broken.id, binary.id] },
      POLL,
    );
    expect(batch.file_counts).toEqual({ in_progress: 0, completed: 2, failed: 2, cancelled: 0, total: 4 });
    const failed = await client.vectorStores.files.list(store.id, { filter: "failed" });
    const byId = new Map(failed.data.map((f) => [f.id, f]));
    expect(byId.get(broken.id)?.last_error).toMatchObject({ code: "invalid_file" });
    expect(byId.get(binary.id)?.last_error).toMatchObject({ code: "unsupported_file" });
    const completed = await client.vectorStores.files.list(store.id, { filter: "completed" });
    expect(completed.data.map((f) => f.id).sort()).toEqual([pdf.id, docx.id].sort());

    const content = await client.vectorStores.files.content(docx.id, { vector_store_id: store.id });
    const pages = [];
    for await (const page of content) pages.push(page);
    expect(pages.map((p) => p.text).join("")).toContain("giraffes");
    const pdfContent = await call(
      server.url,
      "GET",
      `/v1/vector_stores/${store.id}/files/${pdf.id}/content`,
      {
        key: mine.key.secret,
      },
    );
    expectMatchesSchema(pdfContent.body, "VectorStoreFileContentResponse");
    expect(pdfContent.body.data.map((d: { text: string }) => d.text)).toEqual([
      "Quarterly revenue grew",
      "Penguins live in Antarctica",
    ]);
    expect((await client.vectorStores.search(store.id, { query: "penguins" })).data[0]?.file_id).toBe(pdf.id);
    expect((await client.vectorStores.search(store.id, { query: "giraffes" })).data[0]?.file_id).toBe(
      docx.id,
    );
  });

  it("starts a store with file_ids and a chunking strategy, and lists its files by status", async () => {
    const a = await upload("a.md", "# Kites\n\nKites fly on windy beaches.");
    const b = await upload("b.md", "# Drums\n\nDrums keep the rhythm.");
    const store = await client.vectorStores.create({
      name: "seeded",
      file_ids: [a.id, b.id],
      chunking_strategy: {
        type: "static",
        static: { max_chunk_size_tokens: 200, chunk_overlap_tokens: 100 },
      },
    });
    expect(store.file_counts.total).toBe(2);
    for (const id of [a.id, b.id]) {
      const done = await client.vectorStores.files.poll(store.id, id, POLL);
      expect(done.status).toBe("completed");
      expect(done.chunking_strategy).toEqual({
        type: "static",
        static: { max_chunk_size_tokens: 200, chunk_overlap_tokens: 100 },
      });
    }
    const listed = await client.vectorStores.files.list(store.id, {
      filter: "completed",
      order: "asc",
      limit: 1,
    });
    expect(listed.data).toHaveLength(1);
    expect(listed.has_more).toBe(true);
    expect((await client.vectorStores.search(store.id, { query: "windy kites" })).data[0]?.file_id).toBe(
      a.id,
    );
  });

  it("filters on attributes with comparison and compound filters", async () => {
    const store = await client.vectorStores.create({ name: "filtered" });
    const specs = [
      { name: "a.txt", attributes: { year: 2021, region: "eu", public: true } },
      { name: "b.txt", attributes: { year: 2023, region: "us", public: false } },
      { name: "c.txt", attributes: { year: 2025, region: "eu", public: false } },
    ];
    const files = [];
    for (const spec of specs)
      files.push(await upload(spec.name, `shared topic harbour lighthouse ${spec.name}`));
    await client.vectorStores.fileBatches.createAndPoll(
      store.id,
      { files: files.map((f, i) => ({ file_id: f.id, attributes: specs[i]?.attributes })) },
      POLL,
    );
    const found = async (filters: OpenAI.VectorStores.VectorStoreSearchParams["filters"]) =>
      (await client.vectorStores.search(store.id, { query: "lighthouse", filters })).data
        .map((d) => d.filename)
        .sort();
    expect(await found({ type: "eq", key: "region", value: "eu" })).toEqual(["a.txt", "c.txt"]);
    expect(await found({ type: "gte", key: "year", value: 2023 })).toEqual(["b.txt", "c.txt"]);
    expect(await found({ type: "in", key: "region", value: ["us"] })).toEqual(["b.txt"]);
    expect(await found({ type: "nin", key: "year", value: [2021, 2025] })).toEqual(["b.txt"]);
    expect(await found({ type: "eq", key: "public", value: true })).toEqual(["a.txt"]);
    expect(
      await found({
        type: "or",
        filters: [
          { type: "lt", key: "year", value: 2022 },
          {
            type: "and",
            filters: [
              { type: "eq", key: "region", value: "eu" },
              { type: "ne", key: "public", value: true },
            ],
          },
        ],
      }),
    ).toEqual(["a.txt", "c.txt"]);
    expect(await found({ type: "eq", key: "missing", value: "x" })).toEqual([]);
    const bad = await call(server.url, "POST", `/v1/vector_stores/${store.id}/search`, {
      key: mine.key.secret,
      body: { query: "x", filters: { type: "eq", key: "region", value: ["eu"] } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("filters.value");

    // Attributes can change after ingestion; search sees the change.
    const updated = await client.vectorStores.files.update(files[1]?.id as string, {
      vector_store_id: store.id,
      attributes: { region: "eu", year: 2023 },
    });
    expect(updated.attributes).toEqual({ region: "eu", year: 2023 });
    expect(await found({ type: "eq", key: "region", value: "eu" })).toEqual(["a.txt", "b.txt", "c.txt"]);
  });

  it("answers rewrite_query honestly and refuses bad requests with the field named", async () => {
    const store = await client.vectorStores.create({ name: "checks" });
    const post = (path: string, body: unknown) =>
      call(server.url, "POST", path, { key: mine.key.secret, body });
    const cases: [string, unknown, string][] = [
      [`/v1/vector_stores/${store.id}/search`, { query: "x", rewrite_query: true }, "rewrite_query"],
      [`/v1/vector_stores/${store.id}/search`, { query: "x", max_num_results: 51 }, "max_num_results"],
      [`/v1/vector_stores/${store.id}/search`, { query: [] }, "query"],
      [
        `/v1/vector_stores/${store.id}/search`,
        { query: "x", ranking_options: { score_threshold: 2 } },
        "ranking_options.score_threshold",
      ],
      [
        `/v1/vector_stores/${store.id}/files`,
        {
          file_id: "file-x",
          chunking_strategy: {
            type: "static",
            static: { max_chunk_size_tokens: 200, chunk_overlap_tokens: 150 },
          },
        },
        "chunking_strategy.static.chunk_overlap_tokens",
      ],
      [
        `/v1/vector_stores/${store.id}/files`,
        {
          file_id: "file-x",
          chunking_strategy: {
            type: "static",
            static: { max_chunk_size_tokens: 50, chunk_overlap_tokens: 0 },
          },
        },
        "chunking_strategy.static.max_chunk_size_tokens",
      ],
      [
        "/v1/vector_stores",
        { name: "x", expires_after: { anchor: "created_at", days: 1 } },
        "expires_after.anchor",
      ],
      ["/v1/vector_stores", { name: "x", surprise: 1 }, "surprise"],
    ];
    for (const [path, body, param] of cases) {
      const res = await post(path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.param).toBe(param);
    }
    const missing = await post(`/v1/vector_stores/${store.id}/files`, { file_id: "file-doesnotexist" });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toMatchObject({ code: "file_not_found", param: "file_id" });
    const batchMissing = await post(`/v1/vector_stores/${store.id}/file_batches`, {
      file_ids: ["file-nope"],
    });
    expect(batchMissing.status).toBe(404);
    expect(batchMissing.body.error.param).toBe("file_ids[0]");
    for (const id of ["vs_nope", "../../etc", "vs_a%00b"]) {
      const res = await call(server.url, "GET", `/v1/vector_stores/${encodeURIComponent(id)}`, {
        key: mine.key.secret,
      });
      expect(res.status).toBe(404);
    }
  });

  it("keeps stores, files, batches and searches to their project: another project's key gets 404", async () => {
    const store = await client.vectorStores.create({ name: "private" });
    const file = await upload("secret.txt", "the secret ingredient is cardamom");
    const batch = await client.vectorStores.fileBatches.createAndPoll(
      store.id,
      { file_ids: [file.id] },
      POLL,
    );
    const key = { key: (other as unknown as { apiKey: string }).apiKey };
    const paths: [string, string, unknown?][] = [
      ["GET", `/v1/vector_stores/${store.id}`],
      ["POST", `/v1/vector_stores/${store.id}`, { name: "mine now" }],
      ["DELETE", `/v1/vector_stores/${store.id}`],
      ["POST", `/v1/vector_stores/${store.id}/search`, { query: "cardamom" }],
      ["GET", `/v1/vector_stores/${store.id}/files`],
      ["GET", `/v1/vector_stores/${store.id}/files/${file.id}`],
      ["GET", `/v1/vector_stores/${store.id}/files/${file.id}/content`],
      ["DELETE", `/v1/vector_stores/${store.id}/files/${file.id}`],
      ["POST", `/v1/vector_stores/${store.id}/files`, { file_id: file.id }],
      ["GET", `/v1/vector_stores/${store.id}/file_batches/${batch.id}`],
      ["POST", `/v1/vector_stores/${store.id}/file_batches/${batch.id}/cancel`],
      ["GET", `/v1/vector_stores/${store.id}/file_batches/${batch.id}/files`],
    ];
    for (const [method, path, body] of paths) {
      const res = await call(server.url, method, path, { ...key, body });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    expect((await other.vectorStores.list()).data.map((s) => s.id)).not.toContain(store.id);
    // Their own store cannot take my file either.
    const theirs = await other.vectorStores.create({ name: "theirs" });
    const steal = await call(server.url, "POST", `/v1/vector_stores/${theirs.id}/files`, {
      ...key,
      body: { file_id: file.id },
    });
    expect(steal.status).toBe(404);
    // Still all mine.
    expect((await client.vectorStores.search(store.id, { query: "cardamom" })).data).toHaveLength(1);
  });

  it("lists, updates, expires (anchored at last activity) and deletes stores", async () => {
    const created = [];
    for (let i = 0; i < 3; i++) created.push(await client.vectorStores.create({ name: `page-${i}` }));
    const page = await client.vectorStores.list({ limit: 2 });
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);

    const expiring = await client.vectorStores.create({
      name: "short-lived",
      expires_after: { anchor: "last_active_at", days: 1 },
    });
    expect(expiring.expires_after).toEqual({ anchor: "last_active_at", days: 1 });
    expect(expiring.expires_at).toBe((expiring.last_active_at ?? 0) + 86_400);
    const renamed = await client.vectorStores.update(expiring.id, { name: "renamed", metadata: { a: "b" } });
    expect(renamed).toMatchObject({ name: "renamed", metadata: { a: "b" } });
    skewMs += 2 * DAY;
    try {
      expect((await client.vectorStores.retrieve(expiring.id)).status).toBe("expired");
      const search = await call(server.url, "POST", `/v1/vector_stores/${expiring.id}/search`, {
        key: mine.key.secret,
        body: { query: "anything" },
      });
      expect(search.status).toBe(400);
      expect(search.body.error.code).toBe("vector_store_expired");
    } finally {
      skewMs -= 2 * DAY;
    }
    const removed = await client.vectorStores.delete(created[0]?.id as string);
    expect(removed).toEqual({ id: created[0]?.id, object: "vector_store.deleted", deleted: true });
    expect(
      (await call(server.url, "GET", `/v1/vector_stores/${created[0]?.id}`, { key: mine.key.secret })).status,
    ).toBe(404);
  });

  it("expires a store once its days pass (injected clock): the sweep removes its chunks, the store stays as expired", async () => {
    const db = server.server.access.storage.database.db;
    const rows = async (table: string, storeId: string) =>
      Number(
        (
          await sql<{
            n: number;
          }>`select count(*) as n from ${sql.table(table)} where vector_store_id = ${storeId}`.execute(db)
        ).rows[0]?.n,
      );
    const store = await client.vectorStores.create({
      name: "expiring",
      expires_after: { anchor: "last_active_at", days: 1 },
    });
    const kept = await client.vectorStores.create({ name: "kept" });
    const names = ["seals.txt", "seals.md", "seals.html"];
    const texts = ["Seals sleep on ice floes.", "# Seals\n\nSeals dive deep.", "<p>Seals bark at dawn.</p>"];
    const files = await Promise.all(names.map((name, i) => upload(name, texts[i] as string)));
    for (const target of [store, kept])
      await client.vectorStores.fileBatches.createAndPoll(
        target.id,
        { file_ids: files.map((f) => f.id) },
        POLL,
      );
    expect((await client.vectorStores.search(store.id, { query: "seals" })).data.length).toBeGreaterThan(0);
    expect((await client.vectorStores.retrieve(store.id)).usage_bytes).toBeGreaterThan(0);
    const chunkIds = (
      await sql<{
        id: number;
      }>`select id from vector_store_chunks where vector_store_id = ${store.id}`.execute(db)
    ).rows.map((r) => Number(r.id));
    expect(chunkIds).toHaveLength(3);

    // A file still waiting for a worker when the store expires: its ingestion is cancelled.
    await server.server.ingestionWorker.stop(0);
    let late: OpenAI.Files.FileObject;
    try {
      late = await upload("late.txt", "Seals arrive late.");
      await client.vectorStores.files.create(store.id, { file_id: late.id });
      skewMs += 2 * DAY;
      // Expired as soon as its time passed, before any sweep.
      expect((await client.vectorStores.retrieve(store.id)).status).toBe("expired");
      await server.server.files.sweep();
    } finally {
      server.server.ingestionWorker.start();
    }
    try {
      for (const table of ["vector_store_chunks", "vector_store_file_pages"]) {
        expect(await rows(table, store.id), table).toBe(0);
        expect(await rows(table, kept.id), table).toBe(3);
      }
      if (database.name === "sqlite") {
        const ids = sql.join(chunkIds);
        for (const index of ["vector_store_chunks_fts", `vector_store_vec_${HASH_DIMENSIONS}`]) {
          const left = await sql<{
            n: number;
          }>`select count(*) as n from ${sql.table(index)} where rowid in (${ids})`.execute(db);
          expect(Number(left.rows[0]?.n), index).toBe(0);
        }
      }
      const expired = await client.vectorStores.retrieve(store.id);
      expectMatchesSchema(expired, "VectorStoreObject");
      expect(expired).toMatchObject({ status: "expired", usage_bytes: 0 });
      expect(expired.file_counts).toEqual({
        in_progress: 0,
        completed: 3,
        failed: 0,
        cancelled: 1,
        total: 4,
      });
      const listed = await client.vectorStores.list({ limit: 100 });
      expect(listed.data.find((s) => s.id === store.id)?.status).toBe("expired");
      expect((await client.vectorStores.files.retrieve(late.id, { vector_store_id: store.id })).status).toBe(
        "cancelled",
      );
      // The other store is untouched.
      expect((await client.vectorStores.search(kept.id, { query: "seals" })).data.length).toBeGreaterThan(0);

      // Searching, attaching, reading the parsed content and moving the expiry are refused, naming the store.
      const refused: [string, string, unknown, string][] = [
        ["POST", `/v1/vector_stores/${store.id}/search`, { query: "seals" }, "vector_store_id"],
        ["POST", `/v1/vector_stores/${store.id}/files`, { file_id: files[0]?.id }, "vector_store_id"],
        [
          "POST",
          `/v1/vector_stores/${store.id}/file_batches`,
          { file_ids: [files[0]?.id] },
          "vector_store_id",
        ],
        ["GET", `/v1/vector_stores/${store.id}/files/${files[0]?.id}/content`, undefined, "vector_store_id"],
        [
          "POST",
          `/v1/vector_stores/${store.id}`,
          { expires_after: { anchor: "last_active_at", days: 7 } },
          "expires_after",
        ],
        [
          "POST",
          "/v1/responses",
          {
            model: TINY_MODEL,
            input: "seals?",
            tools: [{ type: "file_search", vector_store_ids: [store.id] }],
            max_output_tokens: 16,
            store: false,
          },
          "tools[0].vector_store_ids[0]",
        ],
      ];
      for (const [method, path, body, param] of refused) {
        const res = await call(server.url, method, path, { key: mine.key.secret, body });
        expect(res.status, `${method} ${path}`).toBe(400);
        expect(res.headers.get("content-type")).toContain("application/json");
        expect(res.body.error, `${method} ${path}`).toMatchObject({
          type: "invalid_request_error",
          code: "vector_store_expired",
          param,
        });
      }
      // Renaming still works; deleting works.
      expect((await client.vectorStores.update(store.id, { name: "gone" })).name).toBe("gone");
    } finally {
      skewMs -= 2 * DAY;
    }
    // Expired for good, even with the clock back where it was.
    expect((await client.vectorStores.retrieve(store.id)).status).toBe("expired");
    expect(await client.vectorStores.delete(store.id)).toMatchObject({ deleted: true });
  });

  it("detaches files (search forgets them) and cancels a file batch", async () => {
    const store = await client.vectorStores.create({ name: "detach" });
    const file = await client.vectorStores.files.uploadAndPoll(
      store.id,
      await toFile(Buffer.from("otters hold hands while sleeping"), "otters.txt"),
      POLL,
    );
    expect((await client.vectorStores.search(store.id, { query: "otters" })).data).toHaveLength(1);
    const deleted = await client.vectorStores.files.delete(file.id, { vector_store_id: store.id });
    expect(deleted).toEqual({ id: file.id, object: "vector_store.file.deleted", deleted: true });
    expect((await client.vectorStores.search(store.id, { query: "otters" })).data).toHaveLength(0);
    // The file itself stays.
    expect((await client.files.retrieve(file.id)).id).toBe(file.id);

    // A batch cancelled before a worker takes its files: they end cancelled.
    await server.server.ingestionWorker.stop(0);
    try {
      const waiting = await upload("wait.txt", "never indexed");
      const batch = await client.vectorStores.fileBatches.create(store.id, { file_ids: [waiting.id] });
      expect(batch.status).toBe("in_progress");
      const cancelled = await client.vectorStores.fileBatches.cancel(batch.id, { vector_store_id: store.id });
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled.file_counts).toMatchObject({ cancelled: 1, in_progress: 0 });
      const listed = await client.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: store.id });
      expect(listed.data.map((f) => f.status)).toEqual(["cancelled"]);
    } finally {
      server.server.ingestionWorker.start();
    }
  });

  it("answers with the file_search tool in the Responses API: the call item, its results when included, citations", async () => {
    const store = await client.vectorStores.create({ name: "answers" });
    const file = await client.vectorStores.files.uploadAndPoll(
      store.id,
      await toFile(Buffer.from("Emperor penguins huddle together to keep warm in winter."), "penguins.txt"),
      POLL,
    );
    const tools: OpenAI.Responses.Tool[] = [
      { type: "file_search", vector_store_ids: [store.id], max_num_results: 2 },
    ];
    const question = "How do penguins keep warm?";
    const response = await client.responses.create({
      model: TINY_MODEL,
      input: question,
      tools,
      include: ["file_search_call.results"],
      max_output_tokens: 16,
      store: false,
    });
    expectMatchesSchema(response, "Response");
    const [searchCall, message] = response.output;
    expect(searchCall).toMatchObject({ type: "file_search_call", status: "completed", queries: [question] });
    const results = (searchCall as OpenAI.Responses.ResponseFileSearchToolCall).results;
    expect(results?.[0]).toMatchObject({ file_id: file.id, filename: "penguins.txt" });
    expect(results?.[0]?.text).toContain("Emperor penguins");
    expect(message?.type).toBe("message");
    const text = (message as OpenAI.Responses.ResponseOutputMessage)
      .content[0] as OpenAI.Responses.ResponseOutputText;
    expect(text.annotations).toEqual([
      { type: "file_citation", file_id: file.id, filename: "penguins.txt", index: 0 },
    ]);
    expect(response.tools[0]).toMatchObject({ type: "file_search", vector_store_ids: [store.id] });

    // Without include, the call says what it searched for but not what it found.
    const plain = await client.responses.create({
      model: TINY_MODEL,
      input: question,
      tools,
      max_output_tokens: 16,
      store: false,
    });
    expect(plain.output[0]).toMatchObject({ type: "file_search_call", results: null });

    // Streamed: the search's events come first, the citation with the text.
    const stream = await client.responses.create({
      model: TINY_MODEL,
      input: question,
      tools,
      max_output_tokens: 16,
      store: false,
      stream: true,
    });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const at = (type: string) => types.indexOf(type);
    expect(at("response.file_search_call.completed")).toBeGreaterThan(at("response.in_progress"));
    expect(at("response.output_text.annotation.added")).toBeGreaterThan(
      at("response.file_search_call.completed"),
    );
    // The random model may well run into max_output_tokens.
    expect(["response.completed", "response.incomplete"]).toContain(types.at(-1));

    // Another project's store is not found, and the field says which.
    const theirs = await call(server.url, "POST", "/v1/responses", {
      key: (other as unknown as { apiKey: string }).apiKey,
      body: { model: TINY_MODEL, input: question, tools, max_output_tokens: 16, store: false },
    });
    expect(theirs.status).toBe(404);
    expect(theirs.body.error.param).toBe("tools[0].vector_store_ids[0]");
  });
});
