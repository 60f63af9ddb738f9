import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, newAdminKey, startAccessServer } from "../helpers/access.js";
import { HashEmbeddingBackend, hashEmbedDeployment } from "../helpers/hash-embedder.js";
import { expectMatchesSchema, prepareSpecValidators } from "../helpers/openapi.js";
import { serverDatabases } from "../helpers/shared-database.js";
import { type MockUpstream, startMockOpenAiUpstream } from "../providers/helpers/mock-openai-upstream.js";

const databases = await serverDatabases();
const POLL = { pollIntervalMs: 50 };

/** About `words` words of prose (six characters each with the space). */
const prose = (words: number) =>
  Array.from({ length: words }, (_, i) => ["river", "stone", "ember", "willow"][i % 4] + String(i % 10)).join(
    " ",
  );

const staticChunking = (max: number, overlap: number) => ({
  type: "static" as const,
  static: { max_chunk_size_tokens: max, chunk_overlap_tokens: overlap },
});

describe.each(databases)(
  "vector store chunking on an embedding model with a small input limit, on $name",
  (database) => {
    let upstream: MockUpstream;
    let server: AccessServer;
    let client: OpenAI;

    beforeAll(async () => {
      prepareSpecValidators("VectorStoreFileObject");
      upstream = await startMockOpenAiUpstream();
      await database.setup();
      server = await startAccessServer({
        adminKey: null,
        config: {
          ...database.config,
          routed_models: [
            {
              id: "small-embed",
              deployments: [
                {
                  provider: "openai-compatible",
                  base_url: `${upstream.url}/v1`,
                  model: "bert-style-embedder",
                  max_input_tokens: 300,
                  max_retries: 0,
                },
                // Any deployment may embed a chunk: the smallest limit (300) holds for the model.
                { provider: "openai-compatible", base_url: `${upstream.url}/v1`, model: "other-embedder" },
                {
                  provider: "openai-compatible",
                  base_url: `${upstream.url}/v1`,
                  model: "wider-embedder",
                  max_input_tokens: 2048,
                },
              ],
            },
          ],
          vector_stores: { embedding_model: "small-embed", poll_interval_ms: 50 },
        },
      });
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
    });
    afterAll(async () => {
      await server?.stop();
      await upstream?.close();
      await database.drop();
    });

    const upload = async (name: string, text: string) =>
      client.files.create({ file: await toFile(Buffer.from(text), name), purpose: "assistants" });

    it("ingests with auto chunks fitted to the deployment's max_input_tokens and reports the sizes used", async () => {
      const store = await client.vectorStores.create({ name: "small" });
      const file = await upload("long.txt", prose(1500));
      const sent = upstream.requests.length;
      const attached = await client.vectorStores.files.createAndPoll(store.id, { file_id: file.id }, POLL);
      expectMatchesSchema(attached, "VectorStoreFileObject");
      expect(attached).toMatchObject({ status: "completed", last_error: null });
      expect(attached.chunking_strategy).toEqual(staticChunking(300, 150));
      // Every chunk the upstream was sent fits 300 tokens as counted for it (four characters each).
      const inputs = upstream.requests
        .slice(sent)
        .filter((r) => r.path.endsWith("/embeddings"))
        .flatMap((r) => r.body.input as string[]);
      expect(inputs.length).toBeGreaterThan(10);
      for (const input of inputs) expect(input.length).toBeLessThanOrEqual(1200);
      // The store created with files, and a batch, say the same.
      const other = await client.vectorStores.create({ name: "small-2", file_ids: [file.id] });
      const listed = await client.vectorStores.files.list(other.id);
      expect(listed.data[0]?.chunking_strategy).toEqual(staticChunking(300, 150));
      const page = await client.vectorStores.search(store.id, { query: "river stone" });
      expect(page.data.length).toBeGreaterThan(0);
    });

    it("keeps a static size within the limit and refuses a larger one with 400 naming the limit", async () => {
      const store = await client.vectorStores.create({ name: "static" });
      const file = await upload("notes.txt", prose(300));
      const fits = await client.vectorStores.files.createAndPoll(
        store.id,
        { file_id: file.id, chunking_strategy: staticChunking(250, 50) },
        POLL,
      );
      expect(fits).toMatchObject({ status: "completed", chunking_strategy: staticChunking(250, 50) });

      const refused = await client.vectorStores.files
        .create(store.id, { file_id: file.id, chunking_strategy: staticChunking(800, 400) })
        .catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
      const error = (refused as InstanceType<typeof OpenAI.BadRequestError>).error as Record<string, unknown>;
      expect(error.param).toBe("chunking_strategy.static.max_chunk_size_tokens");
      expect(error.message).toContain("'small-embed' takes at most 300 tokens per input");

      const batch = await client.vectorStores.fileBatches
        .create(store.id, {
          files: [
            { file_id: file.id },
            { file_id: (await upload("more.txt", prose(50))).id, chunking_strategy: staticChunking(400, 0) },
          ],
        } as never)
        .catch((err: unknown) => err);
      expect(((batch as InstanceType<typeof OpenAI.BadRequestError>).error as { param?: string }).param).toBe(
        "files[1].chunking_strategy.static.max_chunk_size_tokens",
      );
    });
  },
);

describe.each(databases)(
  "vector store chunking when the model's limit is known only at ingestion, on $name",
  (database) => {
    // The limit is unknown the first time it is asked (the attach: a model still loading), then 200.
    let unknownFor = 1;
    const embedder = new HashEmbeddingBackend(() => (unknownFor-- > 0 ? undefined : 200));
    let server: AccessServer;
    let client: OpenAI;

    beforeAll(async () => {
      await database.setup();
      server = await startAccessServer({
        adminKey: newAdminKey(),
        config: {
          ...database.config,
          vector_stores: { embedding_model: "later-embed", poll_interval_ms: 50 },
        },
        extraDeployments: [hashEmbedDeployment("later-embed", embedder)],
      });
      const { key } = await server.admin.projectWithKey();
      client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key.secret, maxRetries: 0 });
    });
    afterAll(async () => {
      await server?.stop();
      await database.drop();
    });

    it("fits auto when ingestion starts and records it; a static size too large fails the file, naming the limit", async () => {
      const store = await client.vectorStores.create({ name: "later" });
      const upload = async (name: string) =>
        client.files.create({ file: await toFile(Buffer.from(prose(800)), name), purpose: "assistants" });
      const [auto, big] = [await upload("auto.txt"), await upload("big.txt")];
      const batch = await client.vectorStores.fileBatches.createAndPoll(
        store.id,
        {
          files: [{ file_id: auto.id }, { file_id: big.id, chunking_strategy: staticChunking(1000, 200) }],
        } as never,
        POLL,
      );
      expect(batch.file_counts).toMatchObject({ completed: 1, failed: 1 });
      const fitted = await client.vectorStores.files.retrieve(auto.id, { vector_store_id: store.id });
      expect(fitted).toMatchObject({ status: "completed", chunking_strategy: staticChunking(200, 100) });
      const failed = await client.vectorStores.files.retrieve(big.id, { vector_store_id: store.id });
      expect(failed.status).toBe("failed");
      expect(failed.last_error?.code).toBe("invalid_file");
      expect(failed.last_error?.message).toContain("takes at most 200 tokens per input");
      expect(failed.chunking_strategy).toEqual(staticChunking(1000, 200));
      for (const text of embedder.embedded) expect(text.length).toBeLessThanOrEqual(800);
    });
  },
);
