/**
 * Embeddings benchmark: many short strings per request through Switchboard's /v1/embeddings
 * against llama.cpp's llama-server driven directly on its own /embedding endpoint, with the same
 * random-weight embedding model, slots, threads and batch; and the single-short-input latency.
 *
 *   npm run bench:embeddings [-- --model embed-small --inputs 256 --slots 8 --threads 1 --reps 3]
 *
 * Targets, each opened alone, warmed up, measured and closed:
 *   llama-server-direct       the binary and flags Switchboard's llama-server engine uses,
 *                             text in (it tokenizes), POST /embedding
 *   switchboard-llama-server  POST /v1/embeddings (float) on a server whose model runs on llama-server
 *   switchboard-in-process    the same on node-llama-cpp's embedding context (one input per
 *                             evaluation; 1 thread, its best on this kind of machine)
 * Every request uses strings no earlier request used, so nothing is answered from a cache.
 */
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { request } from "undici";
import {
  llamaServerArgs,
  llamaServerEnv,
} from "../src/backends/local/engines/llama-server/llama-server-args.js";
import { waitForHealth } from "../src/backends/local/engines/llama-server/llama-server-client.js";
import { type EngineProcess, ProcessSupervisor } from "../src/backends/local/engines/process-supervisor.js";
import { validateConfig } from "../src/config/load.js";
import { findLlamaServer } from "../src/engine-build/find-llama-server.js";
import type { ModelPreset } from "../src/models/make-model.js";
import { createLogger } from "../src/observability/logger.js";
import { type RunningServer, startServer } from "../src/server.js";
import { benchModel } from "./bench-model.js";
import { fmt, formatTable, median, progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "embed-small" },
    inputs: { type: "string", default: "256" },
    slots: { type: "string", default: "8" },
    // 1: on the shared 2-core machine, 2 threads made llama-server 3.5x slower here (its spinning
    // workers against the neighbours); pass --threads 2 on a quiet machine.
    threads: { type: "string", default: "1" },
    reps: { type: "string", default: "3" },
    singles: { type: "string", default: "40" },
    only: { type: "string" },
  },
});
const INPUTS = Number(values.inputs);
const SLOTS = Number(values.slots);
const THREADS = Number(values.threads);
const REPS = Number(values.reps);
const SINGLES = Number(values.singles);
const CONTEXT = 512;

/** A way to embed a list of strings and close again. */
interface EmbedSession {
  embed(texts: string[]): Promise<number>;
  close(): Promise<void>;
}

interface Target {
  name: string;
  open(modelPath: string): Promise<EmbedSession>;
}

let counter = 0;
/** Short strings (~8–12 tokens) never sent before. */
function freshTexts(count: number): string[] {
  return Array.from({ length: count }, () => {
    const n = counter++;
    return `request ${n} asks about server number ${n * 7} and its ${n % 13} replicas`;
  });
}

async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  const response = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.body.text();
  if (response.statusCode !== 200)
    throw new Error(`${url} answered ${response.statusCode}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const llamaServerDirect: Target = {
  name: "llama-server-direct",
  async open(modelPath) {
    const binary = await findLlamaServer({});
    if (!binary) throw new Error("no llama-server binary: run `node build/src/main.js engine build` first");
    const dataDir = mkdtempSync(join(tmpdir(), "bench-embed-"));
    const supervisor = new ProcessSupervisor(
      {
        kind: "llama-server",
        model: "bench-embed",
        command: binary.path,
        args: ({ port }) =>
          llamaServerArgs(
            {
              modelPath,
              contextSize: CONTEXT,
              slots: SLOTS,
              threads: THREADS,
              gpuLayers: "auto",
              embedding: { pooling: "mean" },
            },
            port,
          ),
        env: ({ apiKey }) => llamaServerEnv(apiKey),
        waitReady: waitForHealth,
      },
      { logger: createLogger("warn"), dataDir, backoffMs: 500, maxBackoffMs: 30_000 },
    );
    const process: EngineProcess = await supervisor.start();
    return {
      async embed(texts) {
        const results = (await postJson(
          `${process.baseUrl}/embedding`,
          { content: texts },
          { authorization: `Bearer ${process.apiKey}` },
        )) as unknown[];
        if (results.length !== texts.length) throw new Error("llama-server returned too few embeddings");
        return results.length;
      },
      async close() {
        await supervisor.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  },
};

function switchboardOn(engine: "llama-server" | "in-process"): Target {
  return {
    name: `switchboard-${engine}`,
    async open(modelPath) {
      const dataDir = mkdtempSync(join(tmpdir(), "bench-embed-sb-"));
      const config = validateConfig({
        port: 0,
        log_level: "warn",
        demo_model: false,
        data_dir: dataDir,
        models: [
          {
            id: "embed",
            source: modelPath,
            kind: "embedding",
            engine,
            context_size: CONTEXT,
            parallel: SLOTS,
            // In-process node-llama-cpp is fastest with one thread (README, Engines); llama-server
            // keeps a persistent pool and gets the threads asked for.
            threads: engine === "in-process" ? 1 : THREADS,
            gpu_layers: "auto",
            max_queue: 1000,
          },
        ],
      });
      const server: RunningServer = await startServer(config, { logger: createLogger("warn") });
      return {
        async embed(texts) {
          const body = (await postJson(`${server.url}/v1/embeddings`, {
            model: "embed",
            input: texts,
            encoding_format: "float",
          })) as { data: unknown[] };
          if (body.data.length !== texts.length) throw new Error("Switchboard returned too few embeddings");
          return body.data.length;
        },
        async close() {
          await server.stop();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  };
}

interface Row {
  target: string;
  inputsPerSecond: number;
  batchMs: number;
  singleP50Ms: number;
}

async function measure(target: Target, modelPath: string): Promise<Row> {
  progress(`${target.name}: starting`);
  const session = await target.open(modelPath);
  try {
    await session.embed(freshTexts(Math.min(INPUTS, 32)));
    await session.embed(freshTexts(1));
    const batches: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const texts = freshTexts(INPUTS);
      const started = performance.now();
      await session.embed(texts);
      batches.push(performance.now() - started);
      progress(`${target.name}: ${INPUTS} inputs in ${batches.at(-1)?.toFixed(0)} ms`);
    }
    const singles: number[] = [];
    for (let i = 0; i < SINGLES; i++) {
      const started = performance.now();
      await session.embed(freshTexts(1));
      singles.push(performance.now() - started);
    }
    const batchMs = median(batches);
    return {
      target: target.name,
      inputsPerSecond: INPUTS / (batchMs / 1000),
      batchMs,
      singleP50Ms: median(singles),
    };
  } finally {
    await session.close();
  }
}

async function main(): Promise<void> {
  const modelPath = await benchModel(values.model as ModelPreset, "f16");
  const all = [llamaServerDirect, switchboardOn("llama-server"), switchboardOn("in-process")];
  const only = values.only?.split(",");
  const targets = only ? all.filter((t) => only.includes(t.name)) : all;
  const rows: Row[] = [];
  for (const target of targets) rows.push(await measure(target, modelPath));
  const baseline = rows.find((r) => r.target === "llama-server-direct");
  process.stdout.write(
    `\nEmbeddings: ${values.model}, ${INPUTS} short strings per request, ${SLOTS} slots, ${THREADS} threads, context ${CONTEXT}, median of ${REPS} (single input: p50 of ${SINGLES})\n\n`,
  );
  process.stdout.write(
    `${formatTable(
      ["target", "inputs/s", `ms per ${INPUTS}`, "ratio vs llama-server", "single input p50 ms"],
      rows.map((r) => [
        r.target,
        fmt(r.inputsPerSecond, 0),
        fmt(r.batchMs, 0),
        baseline ? fmt(r.inputsPerSecond / baseline.inputsPerSecond, 2) : "-",
        fmt(r.singleP50Ms, 1),
      ]),
    )}\n`,
  );
  const switchboard = rows.find((r) => r.target === "switchboard-llama-server");
  if (baseline && switchboard) {
    process.stdout.write(
      `\nSwitchboard on llama-server: ${fmt(switchboard.inputsPerSecond / baseline.inputsPerSecond, 2)}x llama-server's own inputs/s; single input p50 ${fmt(switchboard.singleP50Ms, 1)} ms vs ${fmt(baseline.singleP50Ms, 1)} ms\n`,
    );
  }
}

await main();
