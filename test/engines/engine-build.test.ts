import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, inject, it } from "vitest";
import { LocalEngineFactory } from "../../src/backends/local/engines/engine-factory.js";
import {
  llamaServerArgs,
  llamaServerEnv,
} from "../../src/backends/local/engines/llama-server/llama-server-args.js";
import { validateConfig } from "../../src/config/load.js";
import { buildKey, listCachedBuilds, MANIFEST } from "../../src/engine-build/binary-cache.js";
import { buildFlags, buildLlamaServer } from "../../src/engine-build/build-llama-server.js";
import { nativeWouldUseAmx, x86FeatureFlags } from "../../src/engine-build/cpu-features.js";
import { findLlamaServer } from "../../src/engine-build/find-llama-server.js";
import { nodeLlamaCppLlamaDir, readSourceBundle } from "../../src/engine-build/source-bundle.js";
import { findToolchain, ToolchainError } from "../../src/engine-build/toolchain.js";
import { createLogger } from "../../src/observability/logger.js";

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A fake finished build in a cache dir, as `engine build` leaves it. */
function fakeBuild(cacheDir: string, key: string, revision: string, builtAt: string): string {
  const dir = join(cacheDir, key);
  mkdirSync(join(dir, "bin"), { recursive: true });
  const binary = join(dir, "bin", "llama-server");
  writeFileSync(binary, "#!/bin/sh\n");
  chmodSync(binary, 0o755);
  writeFileSync(
    join(dir, MANIFEST),
    JSON.stringify({
      revision,
      release: "t",
      flags: {},
      cuda: false,
      binary: "bin/llama-server",
      builtAt,
      buildSeconds: 1,
    }),
  );
  return binary;
}

describe("the llama.cpp source node-llama-cpp ships", () => {
  it("is found, and its revision read from the bundle header without git", async () => {
    const dir = nodeLlamaCppLlamaDir();
    expect(dir).toMatch(/node-llama-cpp[/\\]llama$/);
    const bundle = await readSourceBundle();
    expect(bundle?.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(bundle?.path).toMatch(/gitRelease\.bundle$/);
  });

  it("is reported missing in plain words when the package has no bundle", async () => {
    await expect(
      buildLlamaServer({ llamaDir: tempDir("sb-nobundle-"), cacheDir: tempDir("sb-cache-") }),
    ).rejects.toThrow(/source bundle .* was not found/);
  });
});

describe("engine build", () => {
  it("keys builds by source revision and flags", () => {
    const cpu = buildFlags(false, true);
    expect(cpu).toMatchObject({
      GGML_NATIVE: "ON",
      BUILD_SHARED_LIBS: "OFF",
      GGML_CUDA: "OFF",
      LLAMA_CURL: "OFF",
    });
    expect(cpu.LLAMA_BUILD_TESTS).toBe("OFF");
    expect(cpu.LLAMA_USE_PREBUILT_UI).toBe("OFF");
    const a = buildKey("a".repeat(40), cpu);
    expect(a).toMatch(/^aaaaaaaaaaaa-[0-9a-f]{12}$/);
    expect(buildKey("a".repeat(40), { ...cpu })).toBe(a);
    expect(buildKey("b".repeat(40), cpu)).not.toBe(a);
    expect(buildKey("a".repeat(40), buildFlags(true, true))).not.toBe(a);
    expect(buildKey("a".repeat(40), buildFlags(false, false))).not.toBe(a);
  });

  it("builds without -march=native, with the CPU's features but AMX, where native would use AMX", () => {
    const features = x86FeatureFlags();
    const flags = buildFlags(false, true, features);
    expect(flags.GGML_NATIVE).toBe("OFF");
    expect(flags).toMatchObject({ GGML_AMX_TILE: "OFF", GGML_AMX_INT8: "OFF", GGML_AMX_BF16: "OFF" });
    // A portable build (--no-native) stays portable: no CPU features are added.
    expect(buildFlags(false, false, features).GGML_AVX2).toBeUndefined();
  });

  it("says which tools are missing and how to install them", () => {
    const err = (() => {
      try {
        findToolchain({ PATH: tempDir("sb-emptypath-") });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ToolchainError);
    expect((err as Error).message).toMatch(/cmake/);
    expect((err as Error).message).toMatch(/C\+\+ compiler/);
    expect((err as Error).message).toMatch(/apt-get install/);
  });

  it("returns the cached build at once instead of building again", async () => {
    const cacheDir = tempDir("sb-cache-");
    const bundle = await readSourceBundle();
    const toolchain = findToolchain();
    const cuda = toolchain.nvcc !== undefined && toolchain.nvidiaDriver;
    const key = buildKey(
      bundle?.revision as string,
      buildFlags(cuda, true, nativeWouldUseAmx() ? x86FeatureFlags() : undefined),
    );
    const binary = fakeBuild(cacheDir, key, bundle?.revision as string, new Date().toISOString());
    const started = performance.now();
    const result = await buildLlamaServer({
      cacheDir,
      progress: new Writable({ write: (_c, _e, done) => done() }),
    });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(result).toMatchObject({ built: false, binary });
  });
});

describe("finding llama-server", () => {
  it("takes the configured binary, then PATH, then the build cache (this revision first)", async () => {
    const cacheDir = tempDir("sb-cache-");
    const emptyPath = { PATH: tempDir("sb-path-") };
    expect(await findLlamaServer({ cache_dir: cacheDir }, emptyPath)).toBeUndefined();

    const revision = (await readSourceBundle())?.revision as string;
    const older = fakeBuild(
      cacheDir,
      "other-rev",
      "f".repeat(40),
      new Date(Date.now() + 60_000).toISOString(),
    );
    const current = fakeBuild(cacheDir, "this-rev", revision, new Date().toISOString());
    mkdirSync(join(cacheDir, "unfinished.tmp-1"));
    expect((await listCachedBuilds(cacheDir)).map((b) => b.binary)).toEqual([older, current]);
    expect(await findLlamaServer({ cache_dir: cacheDir }, emptyPath)).toEqual({
      path: current,
      origin: "build cache",
    });

    const pathDir = tempDir("sb-path-");
    const onPath = join(pathDir, "llama-server");
    writeFileSync(onPath, "#!/bin/sh\n");
    chmodSync(onPath, 0o755);
    expect(await findLlamaServer({ cache_dir: cacheDir }, { PATH: pathDir })).toEqual({
      path: onPath,
      origin: "PATH",
    });
    expect(await findLlamaServer({ binary: older, cache_dir: cacheDir }, { PATH: pathDir })).toEqual({
      path: older,
      origin: "config",
    });
    await expect(findLlamaServer({ binary: "/no/such/llama-server" })).rejects.toThrow(/no such file/);
  });
});

describe("choosing a model's engine", () => {
  function factory(settings: Record<string, unknown>) {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = validateConfig({ data_dir: tempDir("sb-data-"), ...settings });
    return { engines: new LocalEngineFactory(config, createLogger("info", sink)), lines, config };
  }
  const model = (extra: Record<string, unknown> = {}) =>
    validateConfig({ models: [{ id: "m", source: inject("tinyModelPath"), ...extra }] }).models[0] as never;

  it("auto takes llama-server when a binary is available", async () => {
    const cacheDir = tempDir("sb-cache-");
    const binary = fakeBuild(cacheDir, "k", "0".repeat(40), new Date().toISOString());
    const { engines } = factory({ engines: { llama_server: { binary } } });
    const { name } = await engines.create(model(), async () => "");
    expect(name).toBe("llama-server");
    const pinned = await engines.create(model({ engine: "in-process" }), async () => "");
    expect(pinned.name).toBe("in-process");
    expect((await engines.create(model({ engine: "runner" }), async () => "")).name).toBe("runner");
  });

  it("auto falls back to the runner and says once how much faster llama-server is and how to get it", async () => {
    const previous = process.env.PATH;
    const previousCache = process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR;
    process.env.PATH = tempDir("sb-path-");
    process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR = tempDir("sb-cache-");
    try {
      const { engines, lines } = factory({});
      expect((await engines.create(model(), async () => "")).name).toBe("runner");
      expect((await engines.create(model({ id: "n" }), async () => "")).name).toBe("runner");
      expect((await engines.create(model({ engine: "in-process" }), async () => "")).name).toBe("in-process");
      const hints = lines.filter((l) => l.includes("switchboard engine build"));
      expect(hints).toHaveLength(1);
      expect(hints[0]).toMatch(/\d(\.\d)?-\d(\.\d)?x the tokens\/s/);
      await expect(engines.create(model({ engine: "llama-server" }), async () => "")).rejects.toThrow(
        /engine: llama-server, but no llama-server binary/,
      );
    } finally {
      process.env.PATH = previous;
      if (previousCache === undefined) delete process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR;
      else process.env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR = previousCache;
    }
  });
});

describe("llama-server's command line", () => {
  const settings = {
    modelPath: "/m.gguf",
    contextSize: 2048,
    slots: 4,
    threads: 2,
    gpuLayers: "max" as const,
    flashAttention: "on" as const,
    kvCacheType: "q8_0",
    extraArgs: ["--cache-ram", "0"],
  };

  it("binds loopback, splits the context over the slots and passes the model's settings through", () => {
    const args = llamaServerArgs(settings, 4321);
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value("--host")).toBe("127.0.0.1");
    expect(value("--port")).toBe("4321");
    expect(value("--parallel")).toBe("4");
    expect(value("--ctx-size")).toBe("8192");
    expect(value("--threads")).toBe("2");
    expect(value("--threads-batch")).toBe("2");
    expect(value("--n-gpu-layers")).toBe("all");
    expect(value("--flash-attn")).toBe("on");
    expect(value("--cache-type-k")).toBe("q8_0");
    expect(value("--cache-type-v")).toBe("q8_0");
    expect(args).toContain("--no-webui");
    expect(args.slice(-2)).toEqual(["--cache-ram", "0"]);
    expect(llamaServerArgs({ ...settings, batchThreads: 1 }, 1)).toContain("--threads-batch");
  });

  it("keeps the secret off the command line and llama.cpp's own env settings out", () => {
    const env = llamaServerEnv("s3cret", {
      PATH: "/bin",
      LLAMA_ARG_PORT: "80",
      LLAMA_API_KEY: "other",
      HOME: "/h",
    });
    expect(env).toEqual({ PATH: "/bin", HOME: "/h", LLAMA_API_KEY: "s3cret" });
    expect(llamaServerArgs(settings, 1).join(" ")).not.toContain("s3cret");
  });
});
