import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LocalEngineFactory } from "../../src/backends/local/engines/engine-factory.js";
import { validateConfig } from "../../src/config/load.js";
import { parseVersionText } from "../../src/engine-build/llama-server-identity.js";
import { createLogger } from "../../src/observability/logger.js";
import { call, newAdminKey, type WireJson } from "../helpers/access.js";
import { fakeForeignLlamaServer, fakeLlamaServerBuild } from "../helpers/fake-llama-server.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** Why each local model runs on its engine: the factory says, /ready and /admin/models show it. */

const tempDir = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

function factory(settings: Record<string, unknown> = {}) {
  const config = validateConfig({ data_dir: tempDir("sb-data-"), ...settings });
  return new LocalEngineFactory(config, createLogger("silent"));
}

const model = (extra: Record<string, unknown> = {}) =>
  validateConfig({ models: [{ id: "m", source: inject("tinyModelPath"), ...extra }] }).models[0] as never;

describe("the engine choice of a local model", () => {
  it("names a `switchboard engine build` by its manifest: revision, release, flags, build time", async () => {
    const binary = fakeLlamaServerBuild(tempDir("sb-cache-"));
    const engines = factory({ engines: { llama_server: { binary } } });
    const { choice } = await engines.create(model(), async () => "");
    expect(choice).toEqual({
      requested: "auto",
      reason: "llama_server_found",
      detail: expect.stringContaining("llama-server binary was found (config)"),
      binary: {
        origin: "config",
        path: binary,
        revision: "0123456789abcdef0123456789abcdef01234567",
        release: "b7000",
        flags: { GGML_NATIVE: "ON", LLAMA_CURL: "OFF" },
        cuda: false,
        builtAt: "2026-01-02T03:04:05.000Z",
        compiler: "GNU 12.2.0",
      },
    });
  });

  it("names any other llama-server by what its --version prints", async () => {
    const binary = fakeForeignLlamaServer();
    const engines = factory({ engines: { llama_server: { binary } } });
    const { name, choice } = await engines.create(model({ engine: "llama-server" }), async () => "");
    expect(name).toBe("llama-server");
    expect(choice).toMatchObject({
      requested: "llama-server",
      reason: "configured",
      binary: {
        origin: "config",
        path: binary,
        revision: "a1b2c3d4",
        release: "b6543",
        compiler: "cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu",
      },
    });
  });

  it("says when the config named the runner or in-process, and has no binary to describe then", async () => {
    const engines = factory({ engines: { llama_server: { binary: fakeForeignLlamaServer() } } });
    const runner = await engines.create(model({ engine: "runner" }), async () => "");
    expect(runner.choice).toEqual({
      requested: "runner",
      reason: "configured",
      detail: expect.stringContaining("engine: runner"),
    });
    const inProcess = await engines.create(model({ engine: "in-process" }), async () => "");
    expect(inProcess.choice).toMatchObject({ requested: "in-process", reason: "configured" });
    expect(inProcess.choice.binary).toBeUndefined();
  });

  it("says auto took the runner for want of llama-server, and how to get it", async () => {
    const previous = process.env.PATH;
    const previousCache = process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR;
    process.env.PATH = tempDir("sb-path-");
    process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR = tempDir("sb-cache-");
    try {
      const { name, choice } = await factory().create(model(), async () => "");
      expect(name).toBe("runner");
      expect(choice.reason).toBe("no_llama_server");
      expect(choice.requested).toBe("auto");
      expect(choice.detail).toContain("switchboard engine build");
      expect(choice.binary).toBeUndefined();
    } finally {
      process.env.PATH = previous;
      if (previousCache === undefined) delete process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR;
      else process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR = previousCache;
    }
  });

  it("reads llama.cpp's version lines among others, and nothing from text that has none", () => {
    const text =
      "ggml_cuda_init: found 1 CUDA devices\nversion: 7001 (0f1e2d3c4b)\nbuilt with clang 18 for arm64\n";
    expect(parseVersionText(text)).toEqual({
      revision: "0f1e2d3c4b",
      release: "b7001",
      compiler: "clang 18 for arm64",
    });
    // The newer spelling (llama.cpp's build-info.cpp.in since the version string became semver).
    const newer = "version: 0.4.0 (build 7123, commit 9e8d7c6b)\nbuilt with GNU 12.2.0 for Linux x86_64\n";
    expect(parseVersionText(newer)).toEqual({
      revision: "9e8d7c6b",
      release: "b7123",
      compiler: "GNU 12.2.0 for Linux x86_64",
    });
    // A build made without git knows no commit.
    expect(parseVersionText("version: 0.4.0 (build 0, commit unknown)\n")).toEqual({ release: "b0" });
    expect(parseVersionText("usage: llama-server [options]\n")).toEqual({});
  });
});

describe("/ready and /admin/models say why each engine was chosen", () => {
  let t: TestServer;
  const adminKey = newAdminKey();
  let binary: string;
  beforeAll(async () => {
    binary = fakeForeignLlamaServer();
    t = await startTestServer({
      config: { admin_key: adminKey, engines: { llama_server: { binary } } },
      model: { engine: "in-process" },
      // Never loaded (on demand, never asked for): only its engine choice is read.
      extraModels: [{ id: "on-llama-server", engine: "llama-server" }],
    });
  });
  afterAll(() => t?.stop());

  it("without the binary's path on /ready, which any key may read", async () => {
    const res = await call(t.url, "GET", "/ready", { key: adminKey });
    expect(res.status, res.text).toBe(200);
    const byId = new Map<string, WireJson>(res.body.models.map((m: WireJson) => [m.id, m]));
    expect(byId.get(TINY_MODEL).engine.choice).toEqual({
      requested: "in-process",
      reason: "configured",
      detail: expect.any(String),
    });
    expect(byId.get("on-llama-server").engine).toMatchObject({
      engine: "llama-server",
      choice: {
        requested: "llama-server",
        reason: "configured",
        binary: { origin: "config", revision: "a1b2c3d4", release: "b6543" },
      },
    });
    expect(byId.get("on-llama-server").engine.choice.binary.path).toBeUndefined();
    expect(res.text).not.toContain(binary);
  });

  it("with it on /admin/models, for operators", async () => {
    const res = await call(t.url, "GET", "/admin/models", { key: adminKey });
    expect(res.status, res.text).toBe(200);
    const model = (res.body.data as WireJson[]).find((m) => m.id === "on-llama-server");
    expect(model.engine.choice.binary).toMatchObject({
      origin: "config",
      path: binary,
      revision: "a1b2c3d4",
    });
  });
});
