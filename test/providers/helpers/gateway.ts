import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import OpenAI from "openai";
import { buildRegistry } from "../../../src/composition/build-registry.js";
import { validateConfig } from "../../../src/config/load.js";
import { createLogger } from "../../../src/observability/logger.js";
import type { RouterTiming } from "../../../src/router/routed-backend.js";
import { type RunningServer, startServer } from "../../../src/server.js";

export interface Gateway {
  server: RunningServer;
  url: string;
  client: OpenAI;
  logs: string[];
  stop(): Promise<void>;
}

/** A listening Switchboard with routed models only (no local model is loaded). */
export async function startGateway(config: Record<string, unknown>, timing?: RouterTiming): Promise<Gateway> {
  const parsed = validateConfig({
    port: 0,
    log_level: "info",
    demo_model: false,
    data_dir: mkdtempSync(join(tmpdir(), "sb-providers-")),
    ...config,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const logger = createLogger(parsed.log_level, sink);
  // With a timing of its own, the test owns the registry (and closes its models).
  const registry = timing ? await buildRegistry(parsed, logger, Date.now, timing) : undefined;
  const server = await startServer(parsed, { logger, registry });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "client-key", maxRetries: 0 });
  const stop = async () => {
    await server.stop();
    await registry?.close();
  };
  return { server, url: server.url, client, logs, stop };
}

/** The events of a raw SSE response body, and whether it ended with [DONE]. */
export async function readRawStream(response: Response): Promise<{ events: string[]; done: boolean }> {
  const text = await response.text();
  const events = text
    .split("\n\n")
    .map((frame) => frame.trim())
    .filter((frame) => frame.startsWith("data: "))
    .map((frame) => frame.slice(6));
  return { events, done: events.at(-1) === "[DONE]" };
}

/** The SDK error a call fails with (the test fails if it succeeds). */
export async function failureOf(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

/**
 * A router clock that moves only when the test moves it, and sleeps that return at once (and are
 * recorded). Its random is a constant unless the test gives one (a seeded sequence).
 */
export function manualTiming(
  random: () => number = () => 0.5,
): RouterTiming & { sleeps: number[]; advance(ms: number): void } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    random,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
    advance: (ms) => {
      now += ms;
    },
  };
}

/** A seeded pseudo-random sequence in (0, 1) (Park–Miller), for draws a test can repeat. */
export function seededRandom(seed = 1): () => number {
  let state = seed;
  return () => {
    state = (state * 16807) % 2147483647;
    return state / 2147483647;
  };
}
