import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { llamaServerArgs } from "../../src/backends/local/engines/llama-server/llama-server-args.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * Embedding models on every engine: llama-server in its embedding mode (--embeddings --pooling,
 * all inputs in one /embedding call), the runner and in-process through node-llama-cpp's
 * embedding context. The same tokens must give the same vectors whichever engine runs the model.
 */
const binary = await llamaServerForTests();
const ENGINES = ["in-process", "runner", ...(binary ? ["llama-server"] : [])] as const;
type Engine = (typeof ENGINES)[number];

const INPUTS = ["the first input", "a second, rather longer input about servers", "3", "last one"];

const cosine = (a: readonly number[], b: readonly number[]) => {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return dot / Math.sqrt(na * nb);
};

async function serverOn(engine: Engine, model: Record<string, unknown>): Promise<TestServer> {
  return startTestServer({
    config: binary ? { engines: { llama_server: { binary } } } : {},
    model: { id: "tiny-chat", aliases: [], engine, load: "on_demand" },
    extraModels: [{ id: "embed", engine, kind: "embedding", load: "start", parallel: 4, ...model }],
  });
}

describe("embeddings on every engine", () => {
  const vectors = new Map<Engine, number[][]>();
  const lastPooled = new Map<Engine, number[][]>();
  const servers: TestServer[] = [];

  beforeAll(async () => {
    for (const engine of ENGINES) {
      const t = await serverOn(engine, { source: inject("embedModelPath") });
      servers.push(t);
      const response = await t.client.embeddings.create({ model: "embed", input: INPUTS });
      vectors.set(
        engine,
        response.data.map((d) => d.embedding),
      );
      // A GGUF with no pooling of its own (the chat model) embeds with its last token's state.
      const chatGguf = await serverOn(engine, { id: "embed", source: inject("tinyModelPath") });
      servers.push(chatGguf);
      const last = await chatGguf.client.embeddings.create({ model: "embed", input: INPUTS });
      lastPooled.set(
        engine,
        last.data.map((d) => d.embedding),
      );
    }
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it.each(ENGINES.filter((e) => e !== "in-process"))(
    "gives in-process's vectors on %s (mean pooling)",
    (engine) => {
      const expected = vectors.get("in-process") ?? [];
      const got = vectors.get(engine) ?? [];
      expect(got).toHaveLength(INPUTS.length);
      got.forEach((vector, i) => {
        expect(cosine(vector, expected[i] as number[])).toBeGreaterThan(0.999);
      });
    },
  );

  it.each(ENGINES.filter((e) => e !== "in-process"))(
    "gives in-process's last-token vectors on %s",
    (engine) => {
      const expected = lastPooled.get("in-process") ?? [];
      (lastPooled.get(engine) ?? []).forEach((vector, i) => {
        expect(cosine(vector, expected[i] as number[])).toBeGreaterThan(0.999);
      });
    },
  );

  it("reports the pooling each engine embeds with", () => {
    for (const t of servers) {
      const backend = t.server.registry.resolve("embed").backend as LocalBackend;
      expect(["mean", "last"]).toContain(backend.engine.metadata().pooling);
    }
  });
});

describe("embedding mode on llama-server", () => {
  it("starts llama-server with --embeddings, the pooling, and a micro-batch that holds a whole input", () => {
    const args = llamaServerArgs(
      {
        modelPath: "/m.gguf",
        contextSize: 1024,
        slots: 4,
        threads: 1,
        gpuLayers: 0,
        embedding: { pooling: "cls" },
      },
      8080,
    );
    const at = (flag: string) => args[args.indexOf(flag) + 1];
    expect(args).toContain("--embeddings");
    // Without it, batched inputs of different lengths came back with wrong mean-pooled vectors.
    expect(args).toContain("--kv-unified");
    expect(at("--pooling")).toBe("cls");
    expect(at("--ubatch-size")).toBe("1024");
    expect(Number(at("--batch-size"))).toBeGreaterThanOrEqual(1024);
  });

  it.skipIf(!binary)(
    "pools as configured where the GGUF says otherwise (in-process refuses to)",
    async () => {
      const t = await serverOn("llama-server", { source: inject("embedModelPath"), pooling: "cls" });
      try {
        const backend = t.server.registry.resolve("embed").backend as LocalBackend;
        expect(backend.engine.metadata().pooling).toBe("cls");
        const response = await t.client.embeddings.create({
          model: "embed",
          input: "pooled by its first token",
        });
        expect(response.data[0]?.embedding).toHaveLength(64);
      } finally {
        await t.stop();
      }
      await expect(
        serverOn("in-process", { source: inject("embedModelPath"), pooling: "cls" }),
      ).rejects.toThrow(/pooling: cls/);
    },
  );
});
