import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { inject } from "vitest";
import { buildRegistry } from "../../src/composition/build-registry.js";
import { validateConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { findLlamaServer } from "../../src/engine-build/find-llama-server.js";
import { createLogger } from "../../src/observability/logger.js";
import type { Deployment } from "../../src/router/model-registry.js";
import { type RunningServer, startServer } from "../../src/server.js";

export const TINY_MODEL = "tiny";
export const TINY_ALIAS = "tiny-alias";

export interface TestServer {
  server: RunningServer;
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  /** An official SDK client pointed at the server (retries off so errors surface at once). */
  client: OpenAI;
  /** The server's data dir (its SQLite database and file store, unless configured elsewhere). */
  dataDir: string;
  /** Every log line the server wrote, as text. */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * The engine test servers run on unless a test names one (`model: { engine }`): in-process by
 * default, so the suite does not change with what is installed; SWITCHBOARD_TEST_ENGINE=llama-server
 * runs every server test on llama-server instead (`npm test` also runs test/api and
 * test/hardening with `auto`: llama-server where a binary is found, else the runner).
 */
export const TEST_ENGINE = process.env.SWITCHBOARD_TEST_ENGINE ?? "in-process";

/** The tiny model's training context: llama-server gives no slot more than that. */
const TINY_TRAIN_CONTEXT = 2048;

/** How many times as fast as node-llama-cpp the test engine generates the tiny model. */
export const TEST_ENGINE_SPEEDUP =
  TEST_ENGINE === "llama-server" || (TEST_ENGINE === "auto" && (await findLlamaServer({}))) ? 5 : 1;

/**
 * max_tokens for a generation that must still be running when a test acts on it (cancels it, shuts
 * the server down under it): the tokens it takes on in-process, scaled to the test engine's speed
 * (llama-server is about five times as fast) as far as the tiny model's context holds, so the
 * generation lasts about as long on every engine.
 */
export function inFlightTokens(inProcessTokens: number): number {
  return Math.min(inProcessTokens * TEST_ENGINE_SPEEDUP, TINY_TRAIN_CONTEXT - 48);
}

/** A context_size that holds a short prompt and `maxTokens` (at least the test servers' 512). */
export function contextFor(maxTokens: number): number {
  return Math.max(512, maxTokens + 32);
}

/**
 * A real listening server on the tiny generated model. `config` overrides defaults;
 * `model` overrides fields of the tiny model's entry (`engine` among them); `extraModels` are
 * more entries (loaded on first use) over the same file.
 */
export async function startTestServer(
  options: {
    config?: Record<string, unknown>;
    model?: Record<string, unknown>;
    /** More model entries; any field may be set (an embedding model names its own `source`). */
    extraModels?: ({ id: string; aliases?: string[] } & Record<string, unknown>)[];
    /** The server's clock (expiry tests move it). */
    now?: () => number;
    /** Deployments added beside the configured models (test backends, such as a deterministic embedder). */
    extraDeployments?: Deployment[];
  } = {},
): Promise<TestServer> {
  const config: Config = validateConfig({
    port: 0,
    log_level: "info",
    demo_model: false,
    // Each server its own data dir (and so its own SQLite database).
    data_dir: mkdtempSync(join(tmpdir(), "sb-test-")),
    // Longer than a test process can stall (compiling the OpenAPI validators takes seconds on a
    // busy machine): the client would otherwise send its next request on a connection the server
    // closed while the client could not read the close, and get ECONNRESET.
    keep_alive_timeout_ms: 120_000,
    ...options.config,
    models: [
      {
        id: TINY_MODEL,
        aliases: [TINY_ALIAS],
        source: inject("tinyModelPath"),
        context_size: 512,
        parallel: 2,
        threads: 1,
        gpu_layers: 0,
        engine: TEST_ENGINE,
        ...options.model,
      },
      ...(options.extraModels ?? []).map((extra) => ({
        source: inject("tinyModelPath"),
        context_size: 512,
        parallel: 1,
        threads: 1,
        gpu_layers: 0,
        engine: TEST_ENGINE,
        load: "on_demand",
        ...extra,
      })),
    ],
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createLogger(config.log_level, sink);
  let registry: Awaited<ReturnType<typeof buildRegistry>> | undefined;
  if (options.extraDeployments) {
    registry = await buildRegistry(config, logger);
    for (const deployment of options.extraDeployments) registry.add(deployment);
  }
  const server = await startServer(config, { logger, now: options.now, registry });
  const client = new OpenAI({
    baseURL: `${server.url}/v1`,
    apiKey: "test-key",
    maxRetries: 0,
    timeout: 30_000,
  });
  const stop = async () => {
    await server.stop();
    // A registry given to the server is the giver's to close.
    if (registry) await Promise.allSettled(registry.all().map((d) => d.backend.close()));
  };
  return { server, url: server.url, dataDir: config.data_dir, client, logs, stop };
}
