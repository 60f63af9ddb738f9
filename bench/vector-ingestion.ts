/**
 * Vector store ingestion benchmark, end to end: generated documents (plain text, Markdown, HTML)
 * are uploaded, attached to a new store in one file batch through the official `openai` SDK, and
 * polled until the batch completes. Prints chunks/s and MB/s of input over the batch's wall time,
 * embedded tokens/s, and where the server's ingestion time went (its metrics: extract = read and
 * parse, chunk = tokenize and cut with the model's tokenizer, embed, store = write chunks and
 * complete), with the CPU other processes used meanwhile.
 *
 *   npm run bench:ingestion [-- --kb 200 --files 24 --reps 1 --model embed-small --engine auto
 *     --concurrency 1 --embed-batch 32 --parallel 4 --threads N --max-chunk-tokens 400 --overlap 200 | --auto]
 *
 * The server is the `serve` command's (startServer) with its SQLite database and file store in a
 * temporary folder, the random-weight embedding model generated once (bench-model.ts) and loaded
 * at start; every repetition uses documents no earlier one did.
 */
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import OpenAI, { toFile } from "openai";
import { validateConfig } from "../src/config/load.js";
import type { ModelPreset } from "../src/models/make-model.js";
import { createLogger } from "../src/observability/logger.js";
import { startServer } from "../src/server.js";
import { benchModel } from "./bench-model.js";
import { foreignPercent, snapshot } from "./cpu-monitor.js";
import { fmt, formatTable, median, progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    // About 150,000 tokens embedded with the default chunking: 6–7 minutes per repetition on the
    // shared 2-core machine, where embedding is nearly all of the time.
    kb: { type: "string", default: "200" },
    files: { type: "string", default: "24" },
    reps: { type: "string", default: "1" },
    model: { type: "string", default: "embed-small" },
    engine: { type: "string", default: "auto" },
    concurrency: { type: "string", default: "1" },
    "embed-batch": { type: "string", default: "32" },
    parallel: { type: "string", default: "4" },
    threads: { type: "string" },
    // Static chunking by default: `auto` cuts 800-token windows, more than the 512-token context
    // of bge-small-shaped models (embed-small), which then fail every file; --auto asks for it.
    "max-chunk-tokens": { type: "string", default: "400" },
    overlap: { type: "string", default: "200" },
    auto: { type: "boolean", default: false },
  },
});
const KB = Number(values.kb);
const FILES = Number(values.files);
const REPS = Number(values.reps);
const MODEL = "embed";
const STAGES = ["extract", "chunk", "embed", "store"] as const;
type Stage = (typeof STAGES)[number];

/** A deterministic generator, so runs compare on the same kind of text. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const WORDS = (
  "river stone lantern orchard signal harbor copper meadow ferry quartz tide ember willow prism " +
  "glacier beacon compass thistle saffron cobalt falcon basalt canyon drizzle marble juniper " +
  "velvet pepper walnut lagoon summit pylon ripple timber cinder mosaic nectar orbit quiver"
).split(" ");

function sentence(next: () => number, words: number): string {
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    const word = WORDS[Math.floor(next() * WORDS.length)] as string;
    // Numbers and varied word forms keep the tokenizer from seeing one repeated pattern.
    out.push(next() < 0.1 ? `${word}${Math.floor(next() * 1000)}` : word);
  }
  const text = out.join(" ");
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

function paragraph(next: () => number): string {
  return Array.from({ length: 3 + Math.floor(next() * 4) }, () =>
    sentence(next, 8 + Math.floor(next() * 10)),
  ).join(" ");
}

/** A document of about `bytes` bytes in one of three formats. */
function document(kind: "txt" | "md" | "html", bytes: number, next: () => number): string {
  const parts: string[] = [];
  let size = 0;
  let section = 0;
  while (size < bytes) {
    let part: string;
    if (kind === "txt") part = `${paragraph(next)}\n\n`;
    else if (kind === "md") {
      part =
        section % 3 === 0
          ? `## Section ${section}: ${sentence(next, 3)}\n\n${paragraph(next)}\n\n- ${sentence(next, 6)}\n- ${sentence(next, 6)}\n\n`
          : `${paragraph(next)}\n\n`;
    } else {
      part =
        section % 3 === 0
          ? `<h2>Section ${section}</h2>\n<p>${paragraph(next)}</p>\n<ul><li>${sentence(next, 6)}</li><li>${sentence(next, 6)}</li></ul>\n`
          : `<p>${paragraph(next)}</p>\n`;
    }
    parts.push(part);
    size += Buffer.byteLength(part);
    section++;
  }
  const body = parts.join("");
  if (kind !== "html") return body;
  return `<!doctype html><html><head><title>Doc</title><style>p { margin: 0 }</style></head><body>\n${body}<script>track()</script></body></html>\n`;
}

function documents(rep: number): { name: string; text: string }[] {
  const next = rng(1000 + rep);
  const kinds = ["txt", "md", "html"] as const;
  const each = Math.max(256, Math.floor((KB * 1024) / FILES));
  return Array.from({ length: FILES }, (_, i) => {
    const kind = kinds[i % kinds.length] as (typeof kinds)[number];
    return { name: `doc-${rep}-${i}.${kind}`, text: document(kind, each, next) };
  });
}

/** The server's ingestion counters, from /metrics. */
interface Counters {
  seconds: Record<Stage, number>;
  chunks: number;
  bytes: number;
  embeddedTokens: number;
}

async function counters(baseUrl: string): Promise<Counters> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const value = (name: string, labels = "") => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  };
  const seconds = {} as Record<Stage, number>;
  for (const stage of STAGES)
    seconds[stage] = value("switchboard_vector_ingestion_seconds_total", `{stage="${stage}"}`);
  return {
    seconds,
    chunks: value("switchboard_vector_ingestion_chunks_total"),
    bytes: value("switchboard_vector_ingestion_bytes_total"),
    embeddedTokens: value("switchboard_tokens_total", `{model="${MODEL}",kind="prompt"}`),
  };
}

interface Rep {
  uploadSeconds: number;
  seconds: number;
  inputBytes: number;
  chunks: number;
  tokens: number;
  stageSeconds: Record<Stage, number>;
  otherCpu: number;
}

const chunking = values.auto
  ? undefined
  : {
      type: "static" as const,
      static: {
        max_chunk_size_tokens: Number(values["max-chunk-tokens"]),
        chunk_overlap_tokens: Number(values.overlap),
      },
    };

async function runOnce(client: OpenAI, baseUrl: string, rep: number, ownPids: () => number[]): Promise<Rep> {
  const docs = documents(rep);
  const inputBytes = docs.reduce((sum, d) => sum + Buffer.byteLength(d.text), 0);
  const uploadStarted = performance.now();
  const uploaded = [];
  for (const doc of docs)
    uploaded.push(
      await client.files.create({
        file: await toFile(Buffer.from(doc.text), doc.name),
        purpose: "assistants",
      }),
    );
  const uploadSeconds = (performance.now() - uploadStarted) / 1000;
  const store = await client.vectorStores.create({ name: `bench-${rep}` });
  const before = await counters(baseUrl);
  const cpuBefore = snapshot(ownPids());
  const started = performance.now();
  const batch = await client.vectorStores.fileBatches.createAndPoll(
    store.id,
    { file_ids: uploaded.map((f) => f.id), ...(chunking ? { chunking_strategy: chunking } : {}) },
    { pollIntervalMs: 50 },
  );
  const seconds = (performance.now() - started) / 1000;
  const otherCpu = foreignPercent(cpuBefore, snapshot(ownPids()));
  if (batch.status !== "completed" || batch.file_counts.completed !== FILES)
    throw new Error(`the file batch ended ${batch.status}: ${JSON.stringify(batch.file_counts)}`);
  const after = await counters(baseUrl);
  const stageSeconds = {} as Record<Stage, number>;
  for (const stage of STAGES) stageSeconds[stage] = after.seconds[stage] - before.seconds[stage];
  if (after.bytes - before.bytes !== inputBytes)
    throw new Error(`the server counted ${after.bytes - before.bytes} bytes ingested, not ${inputBytes}`);
  return {
    uploadSeconds,
    seconds,
    inputBytes,
    chunks: after.chunks - before.chunks,
    tokens: after.embeddedTokens - before.embeddedTokens,
    stageSeconds,
    otherCpu,
  };
}

async function main(): Promise<void> {
  const modelPath = await benchModel(values.model as ModelPreset, "f16");
  const dataDir = mkdtempSync(join(tmpdir(), "sb-bench-ingest-"));
  const config = validateConfig({
    port: 0,
    demo_model: false,
    log_level: "warn",
    data_dir: dataDir,
    vector_stores: {
      embedding_model: MODEL,
      concurrency: Number(values.concurrency),
      embed_batch_size: Number(values["embed-batch"]),
      poll_interval_ms: 50,
    },
    models: [
      {
        id: MODEL,
        source: modelPath,
        kind: "embedding",
        engine: values.engine,
        // The model's own (training) context; a chunk must fit in it.
        context_size: 512,
        parallel: Number(values.parallel),
        load: "start",
        ...(values.threads === undefined ? {} : { threads: Number(values.threads) }),
      },
    ],
  });
  progress(`starting the server (${values.model}, engine ${values.engine})`);
  const server = await startServer(config, { logger: createLogger("warn") });
  const engine = () => server.registry.all()[0]?.backend.health().engine;
  const ownPids = () => {
    const pid = engine()?.pid;
    return pid === undefined ? [] : [pid];
  };
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 600_000 });
  const reps: Rep[] = [];
  try {
    progress("warming up (one small file)");
    await runWarmup(client);
    for (let rep = 0; rep < REPS; rep++) {
      const result = await runOnce(client, server.url, rep, ownPids);
      progress(
        `rep ${rep + 1}: ${result.chunks} chunks in ${result.seconds.toFixed(1)} s (other CPU ${fmt(result.otherCpu, 0)}%)`,
      );
      reps.push(result);
    }
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
  report(reps, engine()?.engine ?? values.engine);
}

async function runWarmup(client: OpenAI): Promise<void> {
  const store = await client.vectorStores.create({ name: "warmup" });
  const file = await client.files.create({
    file: await toFile(Buffer.from(paragraph(rng(7)).repeat(20)), "warmup.txt"),
    purpose: "assistants",
  });
  await client.vectorStores.files.createAndPoll(
    store.id,
    { file_id: file.id, ...(chunking ? { chunking_strategy: chunking } : {}) },
    { pollIntervalMs: 50 },
  );
}

function report(reps: readonly Rep[], engine: string): void {
  const pick = (f: (r: Rep) => number) => median(reps.map(f));
  const mb = (bytes: number) => bytes / 1_000_000;
  const strategy = chunking
    ? `static ${chunking.static.max_chunk_size_tokens}/${chunking.static.chunk_overlap_tokens}`
    : "auto (800/400)";
  process.stdout.write(
    `\nVector store ingestion: ${values.model} on ${engine}, ${FILES} files (txt, md, html) of ${fmt(mb(reps[0]?.inputBytes ?? 0), 3)} MB (${reps[0]?.inputBytes} bytes) in all, chunking ${strategy}, ingestion concurrency ${values.concurrency}, embed batch ${values["embed-batch"]}, ${values.parallel} slots; median of ${reps.length}\n\n`,
  );
  process.stdout.write(
    `${formatTable(
      [
        "rep",
        "chunks",
        "seconds",
        "chunks/s",
        "MB/s",
        "KB/s",
        "embedded tokens/s",
        "upload s",
        "other CPU %",
      ],
      reps.map((r, i) => [
        String(i + 1),
        String(r.chunks),
        fmt(r.seconds, 2),
        fmt(r.chunks / r.seconds, 1),
        fmt(mb(r.inputBytes) / r.seconds, 4),
        fmt(r.inputBytes / 1000 / r.seconds, 2),
        fmt(r.tokens / r.seconds, 0),
        fmt(r.uploadSeconds, 2),
        fmt(r.otherCpu, 0),
      ]),
    )}\n\n`,
  );
  const total = (r: Rep) => STAGES.reduce((sum, s) => sum + r.stageSeconds[s], 0);
  process.stdout.write(
    `${formatTable(
      ["stage", "seconds (median)", "share of ingestion time", "ms per chunk"],
      STAGES.map((stage: Stage) => [
        stage,
        fmt(
          pick((r) => r.stageSeconds[stage]),
          2,
        ),
        `${fmt(
          pick((r) => (100 * r.stageSeconds[stage]) / total(r)),
          1,
        )}%`,
        fmt(
          pick((r) => (1000 * r.stageSeconds[stage]) / r.chunks),
          2,
        ),
      ]),
    )}\n`,
  );
  const chunksPerSecond = pick((r) => r.chunks / r.seconds);
  const bytesPerSecond = pick((r) => r.inputBytes / r.seconds);
  const embedShare = pick((r) => (100 * r.stageSeconds.embed) / total(r));
  process.stdout.write(
    `\nIngestion: ${fmt(chunksPerSecond, 1)} chunks/s, ${fmt(mb(bytesPerSecond), 4)} MB/s of input (${fmt(bytesPerSecond / 1000, 2)} KB/s); embedding is ${fmt(embedShare, 0)}% of the server's ingestion time\n`,
  );
}

await main();
