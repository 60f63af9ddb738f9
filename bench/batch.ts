/**
 * Batch benchmark: the same chat requests run as a batch and sent online at the same concurrency,
 * and online time to first token while a batch runs against idle.
 *
 *   npm run bench:batch [-- --requests 24 --concurrency 2 --parallel 3 --reserve 1 --max-tokens 32 --engine auto --threads N --probes 40 --rounds 3]
 *
 * `--concurrency`: online clients and batch worker lines; `--parallel`: the model's slots (default
 * concurrency + 1); `--reserve`: the model's interactive_reserve (default: the server's, 1 when
 * parallel > 1; 0 reproduces batch lines that may take every slot).
 *
 * Throughput runs online, batch, batch, online (so a drift in the machine's speed weighs on both
 * alike). TTFT runs `--rounds` rounds of `--probes` idle probes then `--probes` probes while a batch
 * runs; the percentiles pool every round, and each round's own ratio is printed beside them.
 */
import { mkdtempSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import OpenAI, { toFile } from "openai";
import { validateConfig } from "../src/config/load.js";
import type { ModelPreset } from "../src/models/make-model.js";
import { createLogger } from "../src/observability/logger.js";
import { startServer } from "../src/server.js";
import { benchModel } from "./bench-model.js";
import { progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "24" },
    concurrency: { type: "string", default: "2" },
    parallel: { type: "string" },
    reserve: { type: "string" },
    threads: { type: "string" },
    "max-tokens": { type: "string", default: "32" },
    probes: { type: "string", default: "40" },
    rounds: { type: "string", default: "3" },
    model: { type: "string", default: "smollm2-135m" },
    engine: { type: "string", default: "auto" },
  },
});
const REQUESTS = Number(values.requests);
const CONCURRENCY = Number(values.concurrency);
const PARALLEL = values.parallel === undefined ? CONCURRENCY + 1 : Number(values.parallel);
const RESERVE = values.reserve === undefined ? undefined : Number(values.reserve);
const MAX_TOKENS = Number(values["max-tokens"]);
const PROBES = Number(values.probes);
const ROUNDS = Number(values.rounds);
const MODEL = "bench";

const body = (i: number) => ({
  model: MODEL,
  messages: [{ role: "user" as const, content: `Request ${i}: write a few words about the sea.` }],
  max_tokens: MAX_TOKENS,
  temperature: 0,
  seed: i,
});

async function online(client: OpenAI): Promise<{ seconds: number; tokens: number }> {
  let next = 0;
  let tokens = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        const res = await client.chat.completions.create(body(next++));
        tokens += res.usage?.completion_tokens ?? 0;
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, tokens };
}

async function startBatch(client: OpenAI, count: number): Promise<string> {
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: body(i) }),
  );
  const file = await client.files.create({
    file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
    purpose: "batch",
  });
  const batch = await client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  return batch.id;
}

async function waitBatch(client: OpenAI, id: string): Promise<OpenAI.Batches.Batch> {
  for (;;) {
    const batch = await client.batches.retrieve(id);
    if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return batch;
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function batched(client: OpenAI): Promise<{ seconds: number; tokens: number }> {
  const started = performance.now();
  const done = await waitBatch(client, await startBatch(client, REQUESTS));
  const seconds = (performance.now() - started) / 1000;
  const text = await (await client.files.content(done.output_file_id as string)).text();
  const tokens = text
    .split("\n")
    .filter(Boolean)
    .reduce((sum, line) => sum + (JSON.parse(line).response.body.usage?.completion_tokens ?? 0), 0);
  return { seconds, tokens };
}

async function ttftProbes(client: OpenAI): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < PROBES; i++) {
    const started = performance.now();
    const stream = await client.chat.completions.create({ ...body(1000 + i), max_tokens: 4, stream: true });
    let first = true;
    for await (const chunk of stream) {
      if (first && chunk.choices[0]?.delta?.content) {
        out.push(performance.now() - started);
        first = false;
      }
    }
  }
  return out;
}

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};

const modelPath = await benchModel(values.model as ModelPreset, "q8_0");
const config = validateConfig({
  port: 0,
  demo_model: false,
  log_level: "warn",
  data_dir: mkdtempSync(join(tmpdir(), "sb-bench-batch-")),
  batches: { concurrency: CONCURRENCY, poll_interval_ms: 20 },
  models: [
    {
      id: MODEL,
      source: modelPath,
      parallel: PARALLEL,
      ...(RESERVE === undefined ? {} : { interactive_reserve: RESERVE }),
      ...(values.threads === undefined ? {} : { threads: Number(values.threads) }),
      context_size: 1024,
      engine: values.engine,
    },
  ],
});
const server = await startServer(config, { logger: createLogger("warn") });
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 600_000 });
try {
  const loadBefore = loadavg()[0]?.toFixed(1);
  progress("warming up");
  await client.chat.completions.create(body(0));
  progress(`online, batch, batch, online: ${REQUESTS} requests each at concurrency ${CONCURRENCY}`);
  const on1 = await online(client);
  const bat1 = await batched(client);
  const bat2 = await batched(client);
  const on2 = await online(client);
  const on = { seconds: on1.seconds + on2.seconds, tokens: on1.tokens + on2.tokens };
  const bat = { seconds: bat1.seconds + bat2.seconds, tokens: bat1.tokens + bat2.tokens };
  const idle: number[] = [];
  const busy: number[] = [];
  const rounds: string[] = [];
  let answered = "";
  for (let round = 1; round <= ROUNDS; round++) {
    progress(`round ${round}: TTFT idle, ${PROBES} streamed probes`);
    const idleRound = await ttftProbes(client);
    progress(`round ${round}: TTFT while a batch runs`);
    // Enough lines to outlast the probes (checked below).
    const bg = await startBatch(client, Math.max(REQUESTS * 4, PROBES * 4));
    // Probes start once lines run (past validating, a line answered: the worker is at full pace).
    for (;;) {
      const running = await client.batches.retrieve(bg);
      if ((running.request_counts?.completed ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const busyRound = await ttftProbes(client);
    const afterProbes = await client.batches.retrieve(bg);
    if (afterProbes.status === "in_progress") await client.batches.cancel(bg);
    await waitBatch(client, bg);
    idle.push(...idleRound);
    busy.push(...busyRound);
    answered += ` ${afterProbes.status} (${afterProbes.request_counts?.completed}/${afterProbes.request_counts?.total})`;
    rounds.push(
      `| ${round} | ${percentile(idleRound, 50).toFixed(0)} → ${percentile(busyRound, 50).toFixed(0)} | ${percentile(idleRound, 99).toFixed(0)} → ${percentile(busyRound, 99).toFixed(0)} | ${(percentile(busyRound, 99) / percentile(idleRound, 99)).toFixed(2)}x |`,
    );
  }

  const row = (name: string, r: { seconds: number; tokens: number }) =>
    `| ${name} | ${REQUESTS} | ${r.seconds.toFixed(2)} | ${(REQUESTS / r.seconds).toFixed(2)} | ${(r.tokens / r.seconds).toFixed(1)} |`;
  console.log(
    `\nmodel ${values.model} q8_0, engine ${values.engine}, concurrency ${CONCURRENCY}, parallel ${PARALLEL}, interactive_reserve ${RESERVE ?? "default"}, threads ${values.threads ?? "default"}, max_tokens ${MAX_TOKENS}\n`,
  );
  console.log("| mode | requests | seconds | requests/s | completion tokens/s |\n|---|---|---|---|---|");
  console.log(row("online", on));
  console.log(row("batch", bat));
  console.log("\n| online TTFT (ms) | p50 | p99 |\n|---|---|---|");
  console.log(`| idle | ${percentile(idle, 50).toFixed(0)} | ${percentile(idle, 99).toFixed(0)} |`);
  console.log(
    `| while a batch runs | ${percentile(busy, 50).toFixed(0)} | ${percentile(busy, 99).toFixed(0)} |`,
  );
  console.log(`\nload average (1 min) at start ${loadBefore}, at end ${loadavg()[0]?.toFixed(1)}`);
  console.log(
    "\n| round | TTFT p50 idle → busy (ms) | p99 idle → busy (ms) | p99 ratio |\n|---|---|---|---|",
  );
  for (const line of rounds) console.log(line);
  console.log(`\nthe batch at the end of each round's probes (lines answered/total):${answered}`);
  console.log(
    `\nbatch throughput is ${((bat.tokens / bat.seconds / (on.tokens / on.seconds)) * 100).toFixed(0)}% of online; p99 TTFT under a batch is ${(percentile(busy, 99) / percentile(idle, 99)).toFixed(2)}x idle`,
  );
} finally {
  await server.stop();
}
