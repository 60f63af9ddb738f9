import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { inject } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningServer, startServer } from "../../src/server.js";

export const TINY_MODEL = "tiny";
export const TINY_ALIAS = "tiny-alias";

export interface TestServer {
  server: RunningServer;
  /** e.g. http://127.0.0.1:41234 */
  url: string;
  /** An official SDK client pointed at the server (retries off so errors surface at once). */
  client: OpenAI;
  /** Every log line the server wrote, as text. */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * The engine test servers run on unless a test names one (`model: { engine }`): in-process by
 * default, so the suite does not change with what is installed; SWITCHBOARD_TEST_ENGINE=llama-server
 * runs every server test on llama-server instead.
 */
export const TEST_ENGINE = process.env.SWITCHBOARD_TEST_ENGINE ?? "in-process";

/**
 * A real listening server on the tiny generated model. `config` overrides defaults;
 * `model` overrides fields of the tiny model's entry (`engine` among them); `extraModels` are
 * more entries (loaded on first use) over the same file.
 */
export async function startTestServer(
  options: {
    config?: Record<string, unknown>;
    model?: Record<string, unknown>;
    extraModels?: { id: string; aliases?: string[] }[];
  } = {},
): Promise<TestServer> {
  const config: Config = validateConfig({
    port: 0,
    log_level: "info",
    demo_model: false,
    // Each server its own data dir (and so its own SQLite database).
    data_dir: mkdtempSync(join(tmpdir(), "sb-test-")),
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
  const server = await startServer(config, { logger });
  const client = new OpenAI({
    baseURL: `${server.url}/v1`,
    apiKey: "test-key",
    maxRetries: 0,
    timeout: 30_000,
  });
  return { server, url: server.url, client, logs, stop: () => server.stop() };
}
