import { createReadStream, statSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observability/logger.js";
import { startServer } from "../../src/server.js";
import { TEST_ENGINE } from "../helpers/test-server.js";

const silent = createLogger("silent");

function configWith(dataDir: string, model: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return validateConfig({
    port: 0,
    log_level: "silent",
    data_dir: dataDir,
    demo_model: false,
    models: [{ id: "m", context_size: 256, parallel: 1, gpu_layers: 0, engine: TEST_ENGINE, ...model }],
    ...extra,
  });
}

describe("where model weights come from", () => {
  let hub: Server;
  let hubUrl: string;
  let requests: string[];

  beforeAll(async () => {
    requests = [];
    const tiny = inject("tinyModelPath");
    hub = createServer((req, res) => {
      requests.push(req.url ?? "");
      if (req.url !== "/acme/tiny-gguf/resolve/main/tiny.gguf") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        "content-length": statSync(tiny).size,
        "content-type": "application/octet-stream",
      });
      createReadStream(tiny).pipe(res);
    });
    await new Promise<void>((resolve) => hub.listen(0, "127.0.0.1", resolve));
    hubUrl = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => hub.close(resolve));
  });

  it("downloads an hf: source into the data dir once and serves it", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "sb-hf-"));
    const config = configWith(
      dataDir,
      { source: "hf:acme/tiny-gguf/tiny.gguf" },
      { hf: { base_url: hubUrl } },
    );
    const server = await startServer(config, { logger: silent });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
      const completion = await client.chat.completions.create({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 3,
      });
      expect(completion.usage?.completion_tokens).toBe(3);
      expect(statSync(join(dataDir, "models", "acme", "tiny-gguf", "main", "tiny.gguf")).size).toBe(
        statSync(inject("tinyModelPath")).size,
      );
    } finally {
      await server.stop();
    }
    // A second start finds the file in the data dir and asks the hub nothing.
    const before = requests.length;
    const again = await startServer(config, { logger: silent });
    await again.stop();
    expect(requests.length).toBe(before);
  });

  it("refuses to start with a message naming a model whose hub file does not exist", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "sb-hf-"));
    const config = configWith(
      dataDir,
      { source: "hf:acme/tiny-gguf/missing.gguf" },
      { hf: { base_url: hubUrl } },
    );
    await expect(startServer(config, { logger: silent })).rejects.toThrow(
      /Model 'm' failed to load: .*not found/,
    );
  });

  it("refuses to start with a message naming a model whose file is not a GGUF", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sb-bad-"));
    const bad = join(dir, "bad.gguf");
    await writeFile(bad, "this is not a model");
    await expect(startServer(configWith(dir, { source: bad }), { logger: silent })).rejects.toThrow(
      /Model 'm' failed to load/,
    );
  });

  it("loads an on_demand model on its first request, and is ready before that", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "sb-od-"));
    const config = configWith(dataDir, { source: inject("tinyModelPath"), load: "on_demand" });
    const server = await startServer(config, { logger: silent });
    try {
      const before = (await (await fetch(`${server.url}/ready`)).json()) as ReadyBody;
      expect(before.status).toBe("ready");
      expect(before.models[0]).toMatchObject({ id: "m", ready: false, required: false });
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
      const completion = await client.chat.completions.create({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 2,
      });
      expect(completion.choices[0]?.finish_reason).toBe("length");
      const after = (await (await fetch(`${server.url}/ready`)).json()) as ReadyBody;
      expect(after.models[0]?.ready).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it("answers 503 when an on_demand model cannot be loaded, without leaking the path", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "sb-od-"));
    const missing = join(dataDir, "nowhere", "secret-path.gguf");
    const server = await startServer(configWith(dataDir, { source: missing, load: "on_demand" }), {
      logger: silent,
    });
    try {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text).error.code).toBe("service_unavailable");
      expect(text).not.toContain("secret-path");
    } finally {
      await server.stop();
    }
  });
});

interface ReadyBody {
  status: string;
  models: { id: string; ready: boolean; required: boolean }[];
}
