/**
 * `npm run bench:engine`: output tokens/s and time to first token of every target (node-llama-cpp
 * driven directly, Switchboard over HTTP, ...) on the same model, prompts and settings, side by
 * side, plus a multi-turn prompt-cache measurement. Results go to stdout, progress to stderr.
 */
import { writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import type { ModelPreset, WeightType } from "../src/models/make-model.js";
import { benchModel } from "./bench-model.js";
import { type ConversationResult, formatConversation, runConversations } from "./conversation.js";
import { QuietGuard } from "./cpu-monitor.js";
import {
  type BenchRequest,
  type BenchSession,
  type BenchTarget,
  type EngineSettings,
  fmt,
  formatTable,
  mean,
  median,
  percentile,
  progress,
  type RepResult,
  type ResourceUsage,
  serverMicrosPerToken,
  signed,
  timeRep,
  tokensPerSecond,
} from "./harness.js";
import { singlePrompt } from "./prompts.js";
import { directLlamaGpu, directNodeLlamaCpp } from "./target-direct.js";
import { llamaServerDefaults, llamaServerDirect } from "./target-llama-server.js";
import { type HttpMode, switchboardHttp } from "./target-switchboard-http.js";

const USAGE = `npm run bench:engine -- [options]

  --model tiny|smollm2-135m   random-weight model shape (default smollm2-135m)
  --weights f16|q8_0          weight type (default f16)
  --streams 1,4               concurrent streams per cell; the context gets as many sequences (default 1,4)
  --threads 1                 compute threads, comma-separated (default 1, the server default; try 1,2)
  --reps 3                    repetitions per cell (default 3)
  --tokens 128                generated tokens per stream (default 128)
  --temperature 0.8           every request's temperature (default 0.8; 0 = greedy on every engine)
  --only NAME[,NAME]          only these targets: direct-node-llama-cpp, switchboard-http, and the opt-in
                              switchboard-http-llama-server (the server on its llama-server engine),
                              switchboard-http-runner (the server on its runner engine: node-llama-cpp in
                              a child process with a one-thread libuv pool) and
                              llama-server-direct (the same llama-server process driven directly with the
                              sampler settings Switchboard sends; the baseline of the llama-server rows, so
                              leave direct-node-llama-cpp out then) and llama-server-defaults (the same with
                              llama-server's own sampler defaults)
  --http-mode child|in-process
                              child (default): the server runs as \`node build/src/main.js serve\` in its
                              own process, as deployed; in-process: SDK, server and engine share this process
  --turns 6                   turns of the multi-turn prompt-cache measurement (0 or 1 = skip)
  --context N                 context_size per sequence (default: the server's default)
  --server-node-arg ARG       extra node flag for the child server, repeatable (e.g. --cpu-prof)
  --quiet-wait 30             before each repetition, wait up to this many seconds until other processes
                              use under --quiet-below % of the machine, and repeat a repetition during which
                              they used over twice that (Linux only; development machines are shared)
  --quiet-below 10            percent of all cores
  --quiet-budget 150          seconds of waiting and repeating allowed in the whole run (0 = never)
  --interleave                paired and interleaved: every target open at once, each repetition runs every
                              target in turn (the order rotated from one repetition to the next), and
                              ratios are paired per repetition (default: each target alone in turn, so no
                              two processes hold the model at once)
  --json FILE                 also write the raw measurements as JSON
`;

const WARMUP_TOKENS = 8;
const WARMUP_SHORT_ROUNDS = 4;
const SHORT_PROMPT_WORDS = 4;
/** A repetition a busy neighbour overlapped is measured at most this often in all. */
const MAX_ATTEMPTS = 3;
/**
 * Targets: Switchboard on llama-server keeps ≥98% of llama-server's tok/s at the same sampler
 * settings and ≥95% of llama-server with its own defaults; the runner ≥90% of llama-server at one
 * stream and ≥75% at more; every other path ≥95% of its baseline; TTFT +≤3 ms; the server's own
 * CPU ≤50 µs per streamed token.
 */
const TARGET_TTFT_OVERHEAD_MS = 3;
const TARGET_SERVER_MICROS_PER_TOKEN = 50;
const TARGET_VS_DEFAULTS = 0.95;
const TARGET_ITL_RATIO = 1.1;

function targetRatio(target: string, streams: number): number {
  if (target.startsWith("switchboard-http-llama-server")) return 0.98;
  if (target.startsWith("switchboard-http-runner")) return streams === 1 ? 0.9 : 0.75;
  return 0.95;
}

interface Options {
  preset: ModelPreset;
  weights: WeightType;
  streams: number[];
  threads: number[];
  reps: number;
  tokens: number;
  /** Every request's temperature: 0 is greedy on every engine (top-k 1). */
  temperature: number;
  only: string[] | undefined;
  httpMode: HttpMode;
  turns: number;
  contextSize: number | undefined;
  serverNodeArgs: string[];
  quietWaitMs: number;
  quietBelow: number;
  quietBudgetMs: number;
  interleave: boolean;
  json: string | undefined;
}

interface CellRow {
  target: string;
  baseline: boolean;
  streams: number;
  threads: number;
  reps: RepResult[];
  resources: ResourceUsage;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const modelPath = await benchModel(opts.preset, opts.weights);
  const modelLabel = `${opts.preset} ${opts.weights}`;
  const http = { mode: opts.httpMode, nodeArgs: opts.serverNodeArgs };
  const defaults = [directNodeLlamaCpp, switchboardHttp(http)];
  // Opt-in rows (--only NAME): the server on another engine of its own.
  // llama-server-direct is the baseline of the llama-server rows: run it with --only, not with direct-node-llama-cpp.
  const optional = [
    llamaServerDirect,
    llamaServerDefaults,
    switchboardHttp({ ...http, engine: "llama-server" }),
    switchboardHttp({ ...http, engine: "runner" }),
  ];
  const only = opts.only;
  const targets = (
    only ? [...defaults, ...optional].filter((t) => only.includes(baseName(t))) : defaults
  ).sort((a, b) => Number(b.baseline ?? false) - Number(a.baseline ?? false));
  if (targets.length === 0)
    throw new Error(
      `--only matched no target; there are ${[...defaults, ...optional].map(baseName).join(", ")}`,
    );

  const guard = new QuietGuard({
    belowPercent: opts.quietBelow,
    maxWaitMs: opts.quietWaitMs,
    budgetMs: opts.quietBudgetMs,
    log: progress,
  });
  const rows: CellRow[] = [];
  let cellIndex = 0;
  for (const threads of opts.threads) {
    for (const streams of opts.streams) {
      const settings: EngineSettings = {
        modelPath,
        modelLabel,
        streams,
        threads,
        contextSize: opts.contextSize,
      };
      rows.push(...(await runCell(targets, settings, opts, guard, cellIndex++)));
    }
  }

  let conversations: ConversationResult[] = [];
  const cacheTargets = targets.filter((t) => t.promptCache);
  // Turn 1 has nothing to reuse; the comparison needs at least a second turn.
  if (opts.turns > 1 && cacheTargets.length > 0) {
    const streams = Math.max(...opts.streams);
    const settings: EngineSettings = {
      modelPath,
      modelLabel,
      streams,
      threads: opts.threads[0] as number,
      contextSize: opts.contextSize,
    };
    conversations = await runConversations(cacheTargets, settings, {
      turns: opts.turns,
      reps: opts.reps,
      quiet: (session) => guard.waitForQuiet(session.pids()),
    });
  }

  const gpu = targets.includes(directNodeLlamaCpp) ? await directLlamaGpu() : undefined;
  process.stdout.write(report(opts, modelLabel, targets, rows, conversations, gpu, guard));
  if (opts.json) {
    await writeFile(opts.json, `${JSON.stringify({ options: opts, rows, conversations }, null, 2)}\n`);
  }
}

/**
 * Runs one cell: each target in turn, alone (opened, warmed up, measured `reps` times, closed),
 * the order alternating from cell to cell. Alone, because with two processes holding the model at
 * once whichever loaded it second ran ~7% faster here (see RESULTS.md), which would bias the ratio.
 * --interleave instead keeps every target open and alternates their repetitions (ABBA), which
 * cancels slow drift but carries that bias.
 */
async function runCell(
  targets: BenchTarget[],
  settings: EngineSettings,
  opts: Options,
  guard: QuietGuard,
  cellIndex: number,
): Promise<CellRow[]> {
  const cell = `streams=${settings.streams} threads=${settings.threads}`;
  const open: (BenchSession | undefined)[] = targets.map(() => undefined);
  const resources: ResourceUsage[] = targets.map(() => ({}));
  const reps: RepResult[][] = targets.map(() => []);
  const openSession = async (i: number): Promise<BenchSession> => {
    const existing = open[i];
    if (existing) return existing;
    const target = targets[i] as BenchTarget;
    progress(`${cell}: opening ${target.name}`);
    const session = await target.open(settings);
    open[i] = session;
    // Warm-up touches every sequence (and pages the weights in) before anything is timed, then
    // short requests get the request path's code optimised, as in a server that has been up a while.
    await session.run(requests(settings.streams, "warmup", WARMUP_TOKENS, opts.temperature));
    for (let round = 0; round < WARMUP_SHORT_ROUNDS; round++) {
      await session.run(
        requests(settings.streams, `warmup${round}`, 2, opts.temperature, SHORT_PROMPT_WORDS),
      );
    }
    return session;
  };
  const measure = async (i: number, rep: number): Promise<void> => {
    const target = targets[i] as BenchTarget;
    const session = await openSession(i);
    const ownPids = open.flatMap((s) => s?.pids() ?? []);
    let best: RepResult | undefined;
    for (let attempt = 0; ; attempt++) {
      await guard.waitForQuiet(ownPids);
      // Every attempt gets fresh prompts: a repeat must not hit the prompt cache.
      const key = `${settings.modelLabel}/${cell}/rep${rep}${attempt ? `/again${attempt}` : ""}`;
      const result = await timeRep(
        session,
        requests(settings.streams, key, opts.tokens, opts.temperature),
        ownPids,
      );
      progress(
        `${cell} rep ${rep + 1}/${opts.reps} ${target.name}: ${fmt(tokensPerSecond(result))} tok/s, ` +
          `TTFT ${fmt(median(result.requests.map((r) => r.ttftMs)))} ms, ` +
          `other processes ${fmt(result.foreignCpuPercent, 0)}% CPU` +
          (result.idleSessionsCpuPercent >= 1
            ? `, idle targets ${fmt(result.idleSessionsCpuPercent, 0)}% CPU`
            : ""),
      );
      if (!best || !(result.foreignCpuPercent >= best.foreignCpuPercent)) best = result;
      if (attempt + 1 >= MAX_ATTEMPTS || !guard.shouldRepeat(result.foreignCpuPercent, result.wallMs)) break;
      progress("a busy neighbour overlapped that repetition: measuring it again");
    }
    (reps[i] as RepResult[]).push(best);
    resources[i] = session.resources();
  };
  const closeSession = async (i: number): Promise<void> => {
    const session = open[i];
    open[i] = undefined;
    await session?.close();
  };
  try {
    const order = targets.map((_, i) => i);
    if (opts.interleave) {
      for (const i of order) await openSession(i);
      for (let rep = 0; rep < opts.reps; rep++) {
        // Rotated: each target goes first as often as the others, so drift favours none.
        const shift = rep % order.length;
        for (const i of [...order.slice(shift), ...order.slice(0, shift)]) await measure(i, rep);
      }
    } else {
      for (const i of cellIndex % 2 === 1 ? [...order].reverse() : order) {
        for (let rep = 0; rep < opts.reps; rep++) await measure(i, rep);
        await closeSession(i);
      }
    }
    return targets.map((target, i) => ({
      target: target.name,
      baseline: target.baseline ?? false,
      streams: settings.streams,
      threads: settings.threads,
      reps: reps[i] as RepResult[],
      resources: resources[i] as ResourceUsage,
    }));
  } finally {
    for (let i = 0; i < targets.length; i++) await closeSession(i);
  }
}

/** A target's name without the HTTP-mode suffix, as --only takes it. */
function baseName(target: BenchTarget): string {
  return target.name.replace(/ \[.*\]$/, "");
}

function requests(
  streams: number,
  key: string,
  maxTokens: number,
  temperature: number,
  userWords?: number,
): BenchRequest[] {
  return Array.from({ length: streams }, (_, stream) => ({
    messages: singlePrompt(`${key}/stream${stream}`, userWords),
    maxTokens,
    temperature,
    // A fixed seed per stream: every repetition and target samples alike.
    seed: 1000 + stream,
  }));
}

// ---------------------------------------------------------------------------------------------------------
// Report

interface CellStats {
  tokPerSec: number;
  minTokPerSec: number;
  maxTokPerSec: number;
  ttftMs: number;
  serverTtftMs: number;
  tokensPerRequest: number;
  promptTokens: number;
  serverMicros: number;
  /** p99 of the gaps between text pieces over each repetition's streams, median of reps. */
  itlP99Ms: number;
  foreignCpu: number;
}

function stats(row: CellRow): CellStats {
  const rates = row.reps.map(tokensPerSecond);
  const all = row.reps.flatMap((r) => r.requests);
  return {
    tokPerSec: median(rates),
    minTokPerSec: Math.min(...rates),
    maxTokPerSec: Math.max(...rates),
    ttftMs: median(all.map((r) => r.ttftMs)),
    serverTtftMs: median(all.flatMap((r) => (r.serverTtftMs === undefined ? [] : [r.serverTtftMs]))),
    tokensPerRequest: mean(all.map((r) => r.completionTokens)),
    promptTokens: mean(all.map((r) => r.promptTokens)),
    serverMicros: median(row.reps.map(serverMicrosPerToken).filter(Number.isFinite)),
    itlP99Ms: median(
      row.reps.map((rep) =>
        percentile(
          rep.requests.flatMap((r) => r.interTokenMs),
          99,
        ),
      ),
    ),
    foreignCpu: median(row.reps.map((r) => r.foreignCpuPercent)),
  };
}

/**
 * tok/s of `row` over `base`'s: paired (the median of the ratios within each repetition, both
 * measured back to back) when interleaved, else the ratio of the medians.
 */
function ratioOf(row: CellRow, base: CellRow, paired: boolean): number {
  if (!paired || row.reps.length !== base.reps.length)
    return median(row.reps.map(tokensPerSecond)) / median(base.reps.map(tokensPerSecond));
  return median(row.reps.map((rep, i) => tokensPerSecond(rep) / tokensPerSecond(base.reps[i] as RepResult)));
}

function report(
  opts: Options,
  modelLabel: string,
  targets: BenchTarget[],
  rows: CellRow[],
  conversations: ConversationResult[],
  gpu: string | false | undefined,
  guard: QuietGuard,
): string {
  const cpu = cpus();
  const out: string[] = [];
  out.push(
    `Switchboard engine benchmark: ${modelLabel} (random weights), ${opts.tokens} tokens per stream, ` +
      `temperature ${opts.temperature}, ${opts.reps} reps per cell`,
  );
  out.push(
    `machine: ${cpu.length} cores (${cpu[0]?.model.trim() ?? "?"}), Node ${process.version}, ` +
      `GPU: ${gpu === undefined ? "?" : gpu || "none (CPU only)"}`,
  );
  out.push(
    opts.httpMode === "child"
      ? "HTTP path: server in a CHILD PROCESS (`node build/src/main.js serve`), driven by the openai SDK from the bench process (default; --http-mode in-process puts all in one process)"
      : "HTTP path: IN-PROCESS: the openai SDK client, the server and the engine share one Node process and its cores",
  );
  out.push(
    guard.enabled
      ? `busy neighbours: measurements waited for <${opts.quietBelow}% foreign CPU and were repeated above ` +
          `${2 * opts.quietBelow}%, ${fmt(guard.spentSeconds, 0)} s of a ${opts.quietBudgetMs / 1000} s budget spent`
      : "busy neighbours: not watched (--quiet-budget 0, or no /proc)",
  );
  out.push("");

  const byKey = new Map<string, CellStats>();
  const baseRows = new Map<string, CellRow>();
  for (const row of rows) {
    if (!row.baseline) continue;
    byKey.set(`${row.streams}x${row.threads}`, stats(row));
    baseRows.set(`${row.streams}x${row.threads}`, row);
  }
  const defaultsRows = new Map<string, CellRow>();
  for (const row of rows)
    if (row.target === llamaServerDefaults.name) defaultsRows.set(`${row.streams}x${row.threads}`, row);
  const table: string[][] = [];
  const comparisons: {
    target: string;
    streams: number;
    threads: number;
    ratio: number;
    ttftDelta: number;
    vsDefaults: number;
    serverMicros: number;
    itlRatio: number;
  }[] = [];
  for (const row of rows) {
    const s = stats(row);
    const base = byKey.get(`${row.streams}x${row.threads}`);
    const key = `${row.streams}x${row.threads}`;
    const baseRow = baseRows.get(key);
    const ratio = base && baseRow && !row.baseline ? ratioOf(row, baseRow, opts.interleave) : Number.NaN;
    const ttftDelta = base && !row.baseline ? s.ttftMs - base.ttftMs : Number.NaN;
    const defaultsRow = defaultsRows.get(key);
    const vsDefaults =
      defaultsRow && defaultsRow !== row && row.target.startsWith("switchboard")
        ? ratioOf(row, defaultsRow, opts.interleave)
        : Number.NaN;
    if (base && !row.baseline && row.target.startsWith("switchboard"))
      comparisons.push({
        target: row.target,
        streams: row.streams,
        threads: row.threads,
        ratio,
        ttftDelta,
        vsDefaults,
        serverMicros: s.serverMicros,
        itlRatio: base ? s.itlP99Ms / base.itlP99Ms : Number.NaN,
      });
    table.push([
      row.target,
      String(row.streams),
      String(row.threads),
      `${fmt(s.tokPerSec)} (${fmt(s.minTokPerSec)}-${fmt(s.maxTokPerSec)})`,
      fmt(s.ttftMs),
      fmt(s.itlP99Ms, 2),
      row.baseline ? "1.00" : fmt(ratio, 3),
      row.baseline ? "" : signed(ttftDelta),
      Number.isFinite(s.serverTtftMs) ? fmt(s.serverTtftMs, 0) : "",
      fmt(s.tokensPerRequest, 0),
      fmt(s.promptTokens, 0),
      fmt(s.serverMicros, 0),
      fmt(s.foreignCpu, 0),
    ]);
  }
  out.push(
    formatTable(
      [
        "engine path",
        "streams",
        "threads",
        "tok/s (min-max)",
        "TTFT ms",
        "ITL p99 ms",
        "ratio vs direct",
        "TTFT Δ ms",
        "TTFT at server",
        "tok/req",
        "prompt tok",
        "server µs/tok",
        "other CPU %",
      ],
      table,
    ),
  );
  out.push("");
  out.push(
    "tok/s: all streams' generated tokens / wall time of the repetition (prefill included), median of reps; " +
      "TTFT: median over every request of the cell; TTFT at server: the server's own measure " +
      "(openai-processing-ms, whole ms), the rest is client and loopback; ratio: " +
      (opts.interleave
        ? "median over repetitions of the ratio within each repetition (paired)"
        : "median tok/s over median tok/s of the baseline") +
      "; ITL p99: the 99th percentile of the gaps between text pieces as the client received them; server µs/tok: CPU time of the Switchboard process itself (its engine runs apart) per generated token, median of reps; other CPU %: share of the machine (all cores) " +
      "that processes other than the bench's used during the reps (median; >10 means a busy neighbour).",
  );
  for (const t of targets) out.push(`  ${t.name}: ${t.description}`);
  out.push("");
  for (const row of rows) {
    const res = Object.entries(row.resources)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    out.push(`memory after ${row.target} streams=${row.streams} threads=${row.threads}: ${res}`);
  }
  out.push("");
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  for (const target of new Set(comparisons.map((c) => c.target))) {
    const mine = comparisons.filter((c) => c.target === target);
    const ratioOk = mine.every((c) => c.ratio >= targetRatio(c.target, c.streams));
    const ttftOk = mine.every((c) => c.ttftDelta <= TARGET_TTFT_OVERHEAD_MS);
    const list = (f: (c: (typeof mine)[number]) => string) =>
      mine.map((c) => `${c.streams}s/${c.threads}t ${f(c)}`).join(", ");
    const parts = [
      `tok/s vs baseline ${verdict(ratioOk)} (${list((c) => `${fmt(c.ratio, 3)} of ≥${targetRatio(c.target, c.streams)}`)})`,
      `TTFT +≤${TARGET_TTFT_OVERHEAD_MS} ms ${verdict(ttftOk)} (${list((c) => `${signed(c.ttftDelta)} ms`)})`,
      `ITL p99 ≤${TARGET_ITL_RATIO}× ${verdict(mine.every((c) => c.itlRatio <= TARGET_ITL_RATIO))} (${list((c) => `${fmt(c.itlRatio, 2)}×`)})`,
    ];
    if (mine.some((c) => Number.isFinite(c.vsDefaults)))
      parts.push(
        `vs llama-server's defaults ≥${TARGET_VS_DEFAULTS} ${verdict(mine.every((c) => c.vsDefaults >= TARGET_VS_DEFAULTS))} (${list((c) => fmt(c.vsDefaults, 3))})`,
      );
    if (mine.some((c) => Number.isFinite(c.serverMicros)))
      parts.push(
        `server CPU ≤${TARGET_SERVER_MICROS_PER_TOKEN} µs/token ${verdict(mine.every((c) => c.serverMicros <= TARGET_SERVER_MICROS_PER_TOKEN))} (${list((c) => `${fmt(c.serverMicros, 0)} µs`)})`,
      );
    out.push(`summary ${target}: ${parts.join("; ")}`);
  }
  for (const conversation of conversations) {
    out.push("");
    out.push(formatConversation(conversation));
  }
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// Flags

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "smollm2-135m" },
      weights: { type: "string", default: "f16" },
      streams: { type: "string", default: "1,4" },
      threads: { type: "string", default: "1" },
      reps: { type: "string", default: "3" },
      tokens: { type: "string", default: "128" },
      temperature: { type: "string", default: "0.8" },
      only: { type: "string" },
      "http-mode": { type: "string", default: "child" },
      turns: { type: "string", default: "6" },
      context: { type: "string" },
      "server-node-arg": { type: "string", multiple: true },
      "quiet-wait": { type: "string", default: "30" },
      "quiet-below": { type: "string", default: "10" },
      "quiet-budget": { type: "string", default: "150" },
      interleave: { type: "boolean", default: false },
      json: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const preset = values.model as ModelPreset;
  if (preset !== "tiny" && preset !== "smollm2-135m") usage("--model must be tiny or smollm2-135m");
  const weights = values.weights as WeightType;
  if (weights !== "f16" && weights !== "q8_0") usage("--weights must be f16 or q8_0");
  const httpMode = values["http-mode"] as HttpMode;
  if (httpMode !== "child" && httpMode !== "in-process") usage("--http-mode must be child or in-process");
  return {
    preset,
    weights,
    streams: intList(values.streams, "--streams"),
    threads: intList(values.threads, "--threads"),
    reps: positiveInt(values.reps, "--reps"),
    tokens: positiveInt(values.tokens, "--tokens"),
    temperature: temperatureOf(values.temperature),
    only: values.only?.split(",").map((s) => s.trim()),
    httpMode,
    turns: nonNegativeInt(values.turns, "--turns"),
    contextSize: values.context === undefined ? undefined : positiveInt(values.context, "--context"),
    serverNodeArgs: values["server-node-arg"] ?? [],
    quietWaitMs: nonNegativeInt(values["quiet-wait"], "--quiet-wait") * 1000,
    quietBelow: positiveInt(values["quiet-below"], "--quiet-below"),
    quietBudgetMs: nonNegativeInt(values["quiet-budget"], "--quiet-budget") * 1000,
    interleave: values.interleave === true,
    json: values.json,
  };
}

function temperatureOf(value: string): number {
  const t = Number(value);
  if (!Number.isFinite(t) || t < 0 || t > 2) usage("--temperature must be a number from 0 to 2");
  return t;
}

function intList(value: string, flag: string): number[] {
  return value.split(",").map((v) => positiveInt(v.trim(), flag));
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) usage(`${flag} takes positive integers`);
  return n;
}

function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) usage(`${flag} takes a non-negative integer`);
  return n;
}

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
