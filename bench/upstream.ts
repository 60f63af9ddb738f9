/**
 * Upstream benchmark: what Switchboard adds in front of an OpenAI-compatible upstream. A mock
 * upstream answers at once; the same load goes to it directly and through Switchboard (auth on, a
 * project key with every limit set, limits in memory), at several concurrencies, non-streamed
 * (whole answer) and streamed (time to the first event), a few repetitions each.
 *
 *   npm run bench:upstream [-- --requests 4000 --reps 3 --concurrency 1,16,64 --modes non-stream,stream --redis redis://127.0.0.1:6379]
 *
 * Three processes, so none measures itself: one child runs the mock upstream, one runs Switchboard
 * (with the node flags `switchboard serve` runs with), and the load comes from outside them. Non-streamed rows use wrk (Debian's `wrk` package, a load
 * generator in C that reports latency in microseconds) when it is installed; streamed rows, and
 * every row without wrk (or with --generator undici), use an undici generator in this process that
 * times the first event of each stream with performance.now() (wrk cannot see a first byte).
 * Switchboard's CPU time is read from /proc, so "req/CPU-s" is what one core of Switchboard
 * sustains, whatever else shares the machine; "other CPU %" is the share of the machine (100 = all
 * cores) that processes outside the bench used during the routed runs (median), to read them by.
 * Its heap is measured after a full GC at the start and at the end: growth between them over tens
 * of thousands of requests is a leak, not sizing.
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import Fastify from "fastify";
import { Pool } from "undici";
import { SERVE_NODE_FLAGS } from "../src/cli/node-flags.js";
import { validateConfig } from "../src/config/load.js";
import { createLogger } from "../src/observability/logger.js";
import { startServer } from "../src/server.js";
import { type CpuSnapshot, snapshot } from "./cpu-monitor.js";
import { ScavengeLog, type ScavengeTotals } from "./gc-trace.js";
import { chatRequestProblem } from "./mock-chat-check.js";

const { values } = parseArgs({
  // --no-floor
  allowNegative: true,
  options: {
    role: { type: "string", default: "driver" },
    upstream: { type: "string" },
    requests: { type: "string", default: "4000" },
    warmup: { type: "string", default: "500" },
    reps: { type: "string", default: "3" },
    concurrency: { type: "string", default: "1,16,64" },
    /** Which rows: non-stream, stream, or both (a profile of one kind of request). */
    modes: { type: "string", default: "non-stream,stream" },
    "cpu-prof": { type: "boolean", default: false },
    /** wrk (non-streamed rows, when installed) or undici (every row). */
    generator: { type: "string", default: "wrk" },
    /** Seconds per wrk run. */
    seconds: { type: "string", default: "5" },
    /** redis://… : limits and the router's circuits and caps in Redis, as several instances run. */
    redis: { type: "string", default: "" },
    /**
     * Pin Switchboard (and the floor proxy) to CPU 0 and everything else (the mock upstream, this
     * driver and wrk) to CPU 1 (Linux, taskset): "one core" taken literally, and no neighbour
     * scheduled on the gateway's core.
     */
    pin: { type: "boolean", default: false },
    /** Also run the floors (--floors) in front of the same mock, loaded the same way; --no-floor: none. */
    floor: { type: "boolean", default: true },
    /**
     * Which floors: node (node:http relaying the body and the answer) and fastify (Fastify and
     * undici reading the upstream's stream and answering a chat.completion, no feature of ours).
     */
    floors: { type: "string", default: "node,fastify" },
    /**
     * Trace the scavenges of Switchboard and the floors (--trace-gc-nvp): per row, the young
     * generation's bytes that survive per request and the mean scavenge pause.
     */
    gc: { type: "boolean", default: false },
  },
});

/** The floors to run; anything else is refused before a process starts. */
const FLOOR_KINDS = values.floor ? values.floors.split(",").filter((kind) => kind !== "") : [];
if (FLOOR_KINDS.some((kind) => kind !== "node" && kind !== "fastify")) {
  throw new Error(`--floors takes node and/or fastify, comma-separated; got '${values.floors}'`);
}

/** The rows to run; anything else is refused before a process starts. */
const MODES = values.modes.split(",");
if (MODES.some((mode) => mode !== "non-stream" && mode !== "stream")) {
  throw new Error(`--modes takes non-stream and/or stream, comma-separated; got '${values.modes}'`);
}

const CHAT_BODY = { model: "bench", messages: [{ role: "user", content: "hi" }], max_tokens: 8 };

/** Where a child says what it listens on. */
interface Ready {
  url: string;
  key?: string;
}

// ── the mock upstream ────────────────────────────────────────────────────────────────────────

function chunk(delta: Record<string, unknown>, finish: string | null = null, usage?: unknown) {
  return JSON.stringify({
    id: "chatcmpl-mock",
    object: "chat.completion.chunk",
    created: 1,
    model: "mock",
    choices: usage ? [] : [{ index: 0, delta, finish_reason: finish }],
    ...(usage !== undefined && { usage }),
  });
}

const USAGE = { prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 };
const STREAM_BODY = `${[
  chunk({ role: "assistant", content: "" }),
  chunk({ content: "Hello" }),
  chunk({ content: " there" }),
  chunk({ content: "!" }),
  chunk({}, "stop"),
  chunk({}, null, USAGE),
]
  .map((data) => `data: ${data}\n\n`)
  .join("")}data: [DONE]\n\n`;
const JSON_BODY = JSON.stringify({
  id: "chatcmpl-mock",
  object: "chat.completion",
  created: 1,
  model: "mock",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello there!" }, finish_reason: "stop" }],
  usage: USAGE,
});

async function runMockUpstream(): Promise<Ready> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { stream?: boolean };
      const problem = chatRequestProblem(body);
      if (problem !== undefined) {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ error: { message: `mock upstream: ${problem}`, type: "invalid_request_error" } }),
        );
        return;
      }
      if (body.stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.end(STREAM_BODY);
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON_BODY);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  // Connections opened: with keep-alive working, about as many as the concurrency.
  let connections = 0;
  server.on("connection", () => connections++);
  process.on("message", () => process.send?.({ connections }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

// ── the floor: the least a Node proxy can do ─────────────────────────────────────────────────

/**
 * What any proxy written in Node pays on this machine: node:http in, the body parsed (a proxy must
 * read the model) and written again, one undici request upstream on a keep-alive pool, the answer
 * piped back unread. No auth, limits, usage, metrics, routing or translation. Switchboard's added
 * latency and CPU are read against this, so the machine's own cost (two loopback hops, the
 * wake-ups of one more process) is not taken for Switchboard's.
 */
async function runFloorProxy(upstream: string): Promise<Ready> {
  const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body: string;
      try {
        body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        res.writeHead(400);
        res.end();
        return;
      }
      pool
        .request({
          path: req.url ?? "/",
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        })
        .then(
          (answer) => {
            res.writeHead(answer.statusCode, {
              "content-type": String(answer.headers["content-type"] ?? "application/json"),
            });
            answer.body.pipe(res);
          },
          () => {
            res.writeHead(502);
            res.end();
          },
        );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * What a gateway on Switchboard's own stack pays before any feature of its own: Fastify in (its
 * router, JSON body parser and serializer), one undici request upstream on a keep-alive pool
 * asking for the stream with its usage (as Switchboard asks), the events read and each parsed,
 * and a chat.completion built from them. A streamed request gets the upstream's events passed
 * through as they come. No auth, limits, usage, metrics, routing, validation or translation
 * beyond that: Switchboard's cost over this floor is its features and its layers, not its stack.
 */
async function runFastifyFloor(upstream: string): Promise<Ready> {
  const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
  const app = Fastify({ logger: false });
  app.post("/v1/chat/completions", async (request, reply) => {
    const body = request.body as { model: string; stream?: boolean };
    const answer = await pool.request({
      path: "/v1/chat/completions",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        body.stream ? body : { ...body, stream: true, stream_options: { include_usage: true } },
      ),
    });
    if (body.stream) {
      reply.code(answer.statusCode).header("content-type", "text/event-stream");
      return reply.send(answer.body);
    }
    let content = "";
    let finish: string | null = null;
    let usage: unknown;
    for (const line of (await answer.body.text()).split("\n")) {
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const event = JSON.parse(line.slice(6)) as {
        choices: { delta: { content?: string }; finish_reason: string | null }[];
        usage?: unknown;
      };
      if (event.usage) usage = event.usage;
      const choice = event.choices[0];
      if (choice?.delta.content) content += choice.delta.content;
      if (choice?.finish_reason) finish = choice.finish_reason;
    }
    return {
      id: "chatcmpl-floor",
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: finish }],
      usage,
    };
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

// ── Switchboard ──────────────────────────────────────────────────────────────────────────────

async function runSwitchboard(upstream: string): Promise<Ready> {
  const config = validateConfig({
    port: 0,
    log_level: "silent",
    demo_model: false,
    data_dir: mkdtempSync(join(tmpdir(), "sb-upstream-bench-")),
    admin_key: "sb-bench-admin-key-0123456789",
    ...(values.redis && { redis: values.redis, redis_prefix: `sb-bench-${process.pid}:` }),
    routed_models: [
      {
        id: "bench",
        deployments: [
          { provider: "openai-compatible", base_url: `${upstream}/v1`, model: "mock", api_key: "sk-mock" },
        ],
      },
    ],
  });
  const server = await startServer(config, { logger: createLogger("silent") });
  // The driver asks for the heap after a full GC (the child runs with --expose-gc).
  process.on("message", () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    process.send?.({ heapUsed: process.memoryUsage().heapUsed });
  });
  // A member key with every limit set, so each request does the whole work of checking them.
  const created = await server.access.admin.createKey("proj_default", {
    name: "bench",
    role: "member",
    limits: { requests_per_minute: 1e9, tokens_per_minute: 1e12, max_concurrent: 10_000 },
  });
  return { url: server.url, key: created.secret };
}

// ── the driver ───────────────────────────────────────────────────────────────────────────────

interface Sample {
  /** Whole answer (non-stream) or first event (stream), ms. */
  p50: number;
  p99: number;
  rps: number;
  requests: number;
  /** Switchboard CPU seconds spent during the run (undefined for the direct target). */
  cpuSeconds?: number;
  /** Share of the machine (100 = all cores) processes outside this bench used during the run. */
  otherCpuPercent: number;
}

/** The bench's own processes: this driver and its children (the mock upstream, Switchboard). */
let ownPids: number[] = [];

/** The machine, the bench's own processes, and the children it already reaped (wrk runs). */
function machineSnapshot(): { machine?: CpuSnapshot; reaped: number } {
  return { machine: snapshot(ownPids), reaped: reapedChildJiffies() };
}

/** Percent of the whole machine other processes used between two snapshots (NaN off Linux). */
function otherCpuPercent(
  a: ReturnType<typeof machineSnapshot>,
  b: ReturnType<typeof machineSnapshot>,
): number {
  if (!a.machine || !b.machine || b.machine.total <= a.machine.total) return Number.NaN;
  const own = b.machine.own - a.machine.own + (b.reaped - a.reaped);
  const other = b.machine.busy - a.machine.busy - own;
  return Math.max(0, (100 * other) / (b.machine.total - a.machine.total));
}

/** cutime + cstime of this process: CPU of its children that exited (each wrk run), in jiffies. */
function reapedChildJiffies(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[13]) + Number(fields[14]);
  } catch {
    return 0;
  }
}

function startChild(args: string[]): Promise<{ child: ChildProcess; ready: Ready }> {
  const file = fileURLToPath(import.meta.url);
  const gateway = args.includes("gateway");
  const execArgv = [
    // The gateway runs with the node flags `switchboard serve` has (its young generation size);
    // the floors too, so they differ only in their code.
    ...(gateway ? [...SERVE_NODE_FLAGS, "--expose-gc"] : []),
    ...(args.includes("floor") || args.includes("floor-fastify") ? SERVE_NODE_FLAGS : []),
    ...(values["cpu-prof"] && gateway ? ["--cpu-prof", "--cpu-prof-dir=build/bench-prof"] : []),
  ];
  const gcTraced = values.gc && !args.includes("upstream");
  if (gcTraced) execArgv.push("--trace-gc-nvp");
  const child = fork(file, args, {
    stdio: ["ignore", gcTraced ? "pipe" : "inherit", "inherit", "ipc"],
    execArgv,
  });
  if (gcTraced && child.stdout && child.pid !== undefined)
    scavengeLogs.set(child.pid, new ScavengeLog(child.stdout));
  return new Promise((resolve, reject) => {
    child.once("message", (ready) => resolve({ child, ready: ready as Ready }));
    child.once("exit", (code) => reject(new Error(`child ${args.join(" ")} exited with ${code}`)));
  });
}

/** Per traced child (--gc), by pid: the scavenges it reported. */
const scavengeLogs = new Map<number, ScavengeLog>();

/** Runs a load against a traced child and adds its scavenges to `into`; the load's result. */
async function withScavenges(
  pid: number | undefined,
  into: ScavengeTotals[],
  run: () => Promise<Sample>,
): Promise<Sample> {
  const log = pid === undefined ? undefined : scavengeLogs.get(pid);
  const mark = log?.mark() ?? 0;
  const sample = await run();
  if (log) {
    // The trace comes through a pipe: let the last lines of the run arrive.
    await new Promise((resolve) => setTimeout(resolve, 50));
    into.push(log.since(mark));
  }
  return sample;
}

/** Bytes surviving per request and the mean pause, over runs that served `requests` in all. */
function scavengeCell(runs: ScavengeTotals[], requests: number): string {
  const scavenges = runs.reduce((n, r) => n + r.scavenges, 0);
  if (scavenges === 0) return "– | –";
  const survived = runs.reduce((n, r) => n + r.survivedBytes, 0);
  const pause = runs.reduce((n, r) => n + r.meanPauseMs * r.scavenges, 0) / scavenges;
  return `${(survived / requests).toFixed(0)} | ${pause.toFixed(2)}`;
}

/** utime + stime of a process, in seconds (Linux); undefined elsewhere. */
function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function rssOf(pid: number | undefined): { rss: number; peak: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
    return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
  } catch {
    return undefined;
  }
}

async function load(
  target: Ready,
  stream: boolean,
  concurrency: number,
  requests: number,
  warmup: number,
  pid?: number,
): Promise<Sample> {
  const pool = new Pool(target.url, { connections: concurrency, pipelining: 1 });
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (target.key) headers.authorization = `Bearer ${target.key}`;
  const body = JSON.stringify({ ...CHAT_BODY, stream });
  const once = async (): Promise<number> => {
    const started = performance.now();
    const res = await pool.request({ path: "/v1/chat/completions", method: "POST", headers, body });
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${await res.body.text()}`);
    let first: number | undefined;
    for await (const piece of res.body) {
      if (first === undefined && (piece as Buffer).includes("data:")) first = performance.now() - started;
    }
    const whole = performance.now() - started;
    return stream ? (first ?? whole) : whole;
  };
  const run = async (count: number, record?: number[]) => {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next++;
        const ms = await once();
        record?.push(ms);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await run(warmup);
  if (!stream && wrk) {
    await pool.close();
    return loadWithWrk(target, concurrency, pid);
  }
  const latency: number[] = [];
  const machineBefore = machineSnapshot();
  const cpuBefore = cpuSecondsOf(pid);
  const began = performance.now();
  await run(requests, latency);
  const wall = (performance.now() - began) / 1000;
  const cpuAfter = cpuSecondsOf(pid);
  const otherCpu = otherCpuPercent(machineBefore, machineSnapshot());
  await pool.close();
  latency.sort((a, b) => a - b);
  return {
    p50: quantile(latency, 0.5),
    p99: quantile(latency, 0.99),
    rps: requests / wall,
    requests,
    otherCpuPercent: otherCpu,
    ...(cpuBefore !== undefined && cpuAfter !== undefined && { cpuSeconds: cpuAfter - cpuBefore }),
  };
}

/** wrk on the path, when asked for (the default) and installed. */
const wrk = values.generator === "wrk" && hasWrk();

function hasWrk(): boolean {
  try {
    execFileSync("wrk", ["--version"], { stdio: "ignore" });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

/** One wrk run of --seconds at `concurrency` connections: its p50/p99 (µs resolution) and rate. */
async function loadWithWrk(target: Ready, concurrency: number, pid?: number): Promise<Sample> {
  const script = join(mkdtempSync(join(tmpdir(), "sb-wrk-")), "post.lua");
  const headers = [`wrk.headers["Content-Type"] = "application/json"`];
  if (target.key) headers.push(`wrk.headers["Authorization"] = "Bearer ${target.key}"`);
  writeFileSync(
    script,
    [
      `wrk.method = "POST"`,
      `wrk.body = [[${JSON.stringify({ ...CHAT_BODY, stream: false })}]]`,
      ...headers,
    ].join("\n"),
  );
  const machineBefore = machineSnapshot();
  const cpuBefore = cpuSecondsOf(pid);
  const args = ["-t1", `-c${concurrency}`, `-d${values.seconds}s`, "--latency", "-s", script];
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn("wrk", [...args, `${target.url}/v1/chat/completions`]);
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}`))));
  });
  const cpuAfter = cpuSecondsOf(pid);
  const otherCpu = otherCpuPercent(machineBefore, machineSnapshot());
  if (/Non-2xx or 3xx responses/.test(output)) throw new Error(`wrk saw error statuses:\n${output}`);
  const ms = (percent: string) => {
    const match = new RegExp(`\\s${percent}%\\s+([\\d.]+)(us|ms|s)`).exec(output);
    if (!match) throw new Error(`no ${percent}% latency in wrk's output:\n${output}`);
    const scale = { us: 0.001, ms: 1, s: 1000 }[match[2] as "us" | "ms" | "s"];
    return Number(match[1]) * scale;
  };
  const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? Number.NaN);
  return {
    p50: ms("50"),
    p99: ms("99"),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? Number.NaN),
    requests,
    otherCpuPercent: otherCpu,
    ...(cpuBefore !== undefined && cpuAfter !== undefined && { cpuSeconds: cpuAfter - cpuBefore }),
  };
}

const requestsPerCpuSecond = (s: Sample) => (s.cpuSeconds ? s.requests / s.cpuSeconds : Number.NaN);

/** Every thread of these processes on one CPU (threads made later inherit it). Linux only. */
function pinTo(cpu: number, ...pids: (number | undefined)[]): void {
  for (const pid of pids) {
    if (pid !== undefined)
      execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
  }
}

/** Switchboard's heap after a full GC, in MiB. */
function heapAfterGc(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once("message", (m) => resolve((m as { heapUsed: number }).heapUsed / 1024 / 1024));
    child.send("memory");
  });
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function drive(): Promise<void> {
  const requests = Number(values.requests);
  const warmup = Number(values.warmup);
  const reps = Number(values.reps);
  const levels = (values.concurrency ?? "").split(",").map(Number);
  const mock = await startChild(["--role", "upstream"]);
  const gateway = await startChild([
    "--role",
    "gateway",
    "--upstream",
    mock.ready.url,
    ...(values.redis ? ["--redis", values.redis] : []),
  ]);
  const floors: { kind: string; child: ChildProcess; ready: Ready }[] = [];
  for (const kind of FLOOR_KINDS) {
    const started = await startChild([
      "--role",
      kind === "node" ? "floor" : "floor-fastify",
      "--upstream",
      mock.ready.url,
    ]);
    floors.push({ kind, ...started });
  }
  ownPids = [mock.child.pid, gateway.child.pid, ...floors.map((f) => f.child.pid)].filter(
    (pid): pid is number => pid !== undefined,
  );
  if (values.pin) {
    pinTo(0, gateway.child.pid, ...floors.map((f) => f.child.pid));
    pinTo(1, mock.child.pid, process.pid);
  }
  process.stderr.write(
    `upstream benchmark: ${wrk ? `non-stream: wrk, ${values.seconds} s per run; stream: ` : ""}` +
      `${requests} requests per run (undici) after ${warmup} warm-up, ${reps} repetitions, ` +
      `concurrency ${levels.join("/")}${values.redis ? "; limits and router state in Redis" : ""}` +
      `${values.pin ? "; Switchboard and the floor pinned to CPU 0, the rest to CPU 1" : ""}\n`,
  );
  // The heap with the gateway started and warmed up once, before the measured load.
  await load(gateway.ready, false, 1, warmup, warmup, gateway.child.pid);
  for (const floor of floors) await load(floor.ready, false, 1, warmup, warmup, floor.child.pid);
  const heapAtStart = await heapAfterGc(gateway.child);
  let served = 0;
  const fmt = (n: number) => n.toFixed(3);
  const floorHeads = floors.map(
    ({ kind }) => ` ${kind} floor added p50 | ${kind} floor added p99 | ${kind} floor req/CPU-s |`,
  );
  const lines: string[] = [
    `| mode | c | direct p50 | direct p99 | via p50 | via p99 | added p50 | added p99 | direct req/s | via req/s | via req/CPU-s |${floorHeads.join("")} other CPU % |`,
    `|---|---|---|---|---|---|---|---|---|---|---|${"---|---|---|".repeat(floors.length)}---|`,
  ];
  const summary: Record<string, number> = {};
  const gcLines: string[] = [
    `| mode | c | via survived B/request | via scavenge pause ms |${floors.map(({ kind }) => ` ${kind} floor survived B/request | ${kind} floor pause ms |`).join("")}`,
    `|---|---|---|---|${"---|---|".repeat(floors.length)}`,
  ];
  for (const stream of [false, true]) {
    if (!MODES.includes(stream ? "stream" : "non-stream")) continue;
    for (const c of levels) {
      const direct: Sample[] = [];
      const via: Sample[] = [];
      const floored: Sample[][] = floors.map(() => []);
      const viaScavenges: ScavengeTotals[] = [];
      const floorScavenges: ScavengeTotals[][] = floors.map(() => []);
      for (let r = 0; r < reps; r++) {
        // Interleaved, so drift on a shared machine hits each alike.
        direct.push(await load(mock.ready, stream, c, requests, warmup));
        for (const [i, floor] of floors.entries()) {
          const pid = floor.child.pid;
          const sample = await withScavenges(pid, floorScavenges[i] ?? [], () =>
            load(floor.ready, stream, c, requests, warmup, pid),
          );
          floored[i]?.push(sample);
        }
        const pid = gateway.child.pid;
        const sample = await withScavenges(pid, viaScavenges, () =>
          load(gateway.ready, stream, c, requests, warmup, pid),
        );
        via.push(sample);
        served += sample.requests + warmup;
      }
      // Every run served its warm-up too, and its scavenges count them.
      const servedBy = (samples: Sample[]) => samples.reduce((n, s) => n + s.requests + warmup, 0);
      gcLines.push(
        `| ${stream ? "stream" : "non-stream"} | ${c} | ${scavengeCell(viaScavenges, servedBy(via))} |` +
          floors
            .map((_, i) => ` ${scavengeCell(floorScavenges[i] ?? [], servedBy(floored[i] ?? []))} |`)
            .join(""),
      );
      const d50 = median(direct.map((s) => s.p50));
      const d99 = median(direct.map((s) => s.p99));
      const v50 = median(via.map((s) => s.p50));
      const v99 = median(via.map((s) => s.p99));
      const perCpu = median(via.map(requestsPerCpuSecond));
      const mode = stream ? "stream (first event)" : "non-stream";
      const row = `${stream ? "s" : "n"}${c}`;
      let floorCells = "";
      for (const [i, { kind }] of floors.entries()) {
        const samples = floored[i] ?? [];
        summary[`${row}${kind}50`] = median(samples.map((s) => s.p50)) - d50;
        summary[`${row}${kind}99`] = median(samples.map((s) => s.p99)) - d99;
        summary[`${row}${kind}cpu`] = median(samples.map(requestsPerCpuSecond));
        floorCells += ` ${fmt(summary[`${row}${kind}50`] as number)} | ${fmt(summary[`${row}${kind}99`] as number)} | ${(summary[`${row}${kind}cpu`] as number).toFixed(0)} |`;
      }
      lines.push(
        `| ${mode} | ${c} | ${fmt(d50)} | ${fmt(d99)} | ${fmt(v50)} | ${fmt(v99)} | ${fmt(v50 - d50)} | ${fmt(v99 - d99)} | ` +
          `${median(direct.map((s) => s.rps)).toFixed(0)} | ${median(via.map((s) => s.rps)).toFixed(0)} | ${perCpu.toFixed(0)} |` +
          `${floorCells} ${median(via.map((s) => s.otherCpuPercent)).toFixed(0)} |`,
      );
      summary[`${row}p50`] = v50 - d50;
      summary[`${row}p99`] = v99 - d99;
      summary[`${row}cpu`] = perCpu;
    }
  }
  const memory = rssOf(gateway.child.pid);
  const heapAtEnd = await heapAfterGc(gateway.child);
  const opened = await new Promise<{ connections: number }>((resolve) => {
    mock.child.once("message", (m) => resolve(m as { connections: number }));
    mock.child.send("stats");
  });
  gateway.child.kill("SIGTERM");
  for (const floor of floors) floor.child.kill("SIGTERM");
  mock.child.kill("SIGTERM");
  console.log(lines.join("\n"));
  if (values.gc) console.log(`\nScavenges during the runs (--trace-gc-nvp):\n${gcLines.join("\n")}`);
  console.log(`connections the mock upstream accepted (direct and via Switchboard): ${opened.connections}`);
  console.log(
    `Switchboard RSS after the runs: ${memory ? `${memory.rss.toFixed(0)} MiB (peak ${memory.peak.toFixed(0)} MiB)` : "unknown"}; ` +
      `heap after a full GC: ${heapAtStart.toFixed(1)} MiB warmed up, ${heapAtEnd.toFixed(1)} MiB after ${served} more requests`,
  );
  const best = Math.max(...levels.map((c) => summary[`n${c}cpu`] ?? 0));
  console.log(
    `summary: added p50 at c=1 ${fmt(summary.n1p50 ?? Number.NaN)} ms (target ≤ 0.3); ` +
      `added p99 at c=64 ${fmt(summary.n64p99 ?? Number.NaN)} ms (target ≤ 1); ` +
      `${best.toFixed(0)} req per Switchboard CPU-second (target ≥ 5000); ` +
      `first streamed event +${fmt(summary.s1p50 ?? Number.NaN)} ms p50 at c=1 (target ≤ 0.5)`,
  );
  for (const { kind } of floors) {
    const bestFloor = Math.max(...levels.map((c) => summary[`n${c}${kind}cpu`] ?? 0));
    const what = kind === "node" ? "a bare Node proxy" : "a Fastify and undici gateway with no features";
    console.log(
      `the ${kind} floor (${what}, same mock and load): added p50 at c=1 ${fmt(summary[`n1${kind}50`] ?? Number.NaN)} ms; ` +
        `added p99 at c=64 ${fmt(summary[`n64${kind}99`] ?? Number.NaN)} ms; ${bestFloor.toFixed(0)} req per CPU-second; ` +
        `first streamed event +${fmt(summary[`s1${kind}50`] ?? Number.NaN)} ms p50 at c=1`,
    );
  }
}

// ── entry ────────────────────────────────────────────────────────────────────────────────────

const CHILD_ROLES: Record<string, () => Promise<Ready>> = {
  upstream: runMockUpstream,
  gateway: () => runSwitchboard(values.upstream ?? ""),
  floor: () => runFloorProxy(values.upstream ?? ""),
  "floor-fastify": () => runFastifyFloor(values.upstream ?? ""),
};
const childRole = CHILD_ROLES[values.role];
if (childRole) {
  const ready = await childRole();
  process.send?.(ready);
  // --cpu-prof writes its profile on a normal exit.
  process.on("SIGTERM", () => process.exit(0));
} else {
  await drive();
}
