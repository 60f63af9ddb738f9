/**
 * Two (or more) builds of Switchboard side by side in front of one mock upstream, loaded in
 * alternating wrk slices, so a shared machine's contention falls on each alike: what the upstream
 * bench's separate runs cannot give when other work comes and goes.
 *
 *   node build/bench/upstream-ab.js --builds before=/path/to/old/build/bench,after=build/bench \
 *     [--c 16] [--slices 24] [--seconds 1] [--stream] [--prof after] [--pin]
 *
 * A build may name its own node flags after its folder, each after a `|`
 * (`--builds 'small=build/bench|--max-semi-space-size=4,default=build/bench|'`: the second runs
 * with none); without them it runs with the flags `switchboard serve` has.
 * Each name=dir is a compiled bench folder holding upstream.js (run with --role gateway); the mock
 * upstream is the first build's. Slices alternate in order and in reverse order. Per build: requests
 * per CPU-second of its Switchboard process over all slices (and the median slice), wrk's median
 * p50 and p99, and the load average before and after. --prof writes a CPU profile of that build's
 * process to bench/out/prof. Non-streamed or streamed (wrk reads the whole stream: no first byte).
 * --pin (Linux, taskset): every build's Switchboard on CPU 0, the mock, this driver and wrk on
 * CPU 1, so the build under load has a core to itself and never competes with the load for it:
 * on a 2-core VM the spread between two processes of one build is then smaller.
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SERVE_NODE_FLAGS } from "../src/cli/node-flags.js";

const { values } = parseArgs({
  options: {
    builds: { type: "string", default: "" },
    c: { type: "string", default: "16" },
    slices: { type: "string", default: "24" },
    seconds: { type: "string", default: "1" },
    prof: { type: "string", default: "" },
    stream: { type: "boolean", default: false },
    pin: { type: "boolean", default: false },
  },
});

interface Ready {
  url: string;
  key?: string;
}

interface Gateway {
  name: string;
  child: ChildProcess;
  ready: Ready;
  requests: number;
  cpu: number;
  perCpu: number[];
  p50: number[];
  p99: number[];
}

function start(
  file: string,
  args: string[],
  execArgv: string[],
): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(file, args, { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv });
  return new Promise((done, fail) => {
    child.once("message", (ready) => done({ child, ready: ready as Ready }));
    child.once("exit", (code) => fail(new Error(`${file} exited with ${code}`)));
  });
}

/** utime + stime of a process, in seconds (Linux). */
function cpuSeconds(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function wrk(gateway: Gateway, concurrency: number, seconds: string): Promise<string> {
  const script = join(mkdtempSync(join(tmpdir(), "sb-ab-")), "post.lua");
  const body = {
    model: "bench",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 8,
    stream: values.stream,
  };
  writeFileSync(
    script,
    [
      `wrk.method = "POST"`,
      `wrk.body = [[${JSON.stringify(body)}]]`,
      `wrk.headers["Content-Type"] = "application/json"`,
      `wrk.headers["Authorization"] = "Bearer ${gateway.ready.key}"`,
    ].join("\n"),
  );
  const args = ["-t1", `-c${concurrency}`, `-d${seconds}s`, "--latency", "-s", script];
  const command = [...args, `${gateway.ready.url}/v1/chat/completions`];
  return new Promise((done, fail) => {
    const child = values.pin
      ? spawn("taskset", ["-c", String(LOAD_CPU), "wrk", ...command])
      : spawn("wrk", command);
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
    });
    child.on("error", fail);
    child.on("exit", (code) => (code === 0 ? done(text) : fail(new Error(`wrk exited with ${code}`))));
  });
}

function latencyMs(output: string, percent: string): number {
  const match = new RegExp(`\\s${percent}%\\s+([\\d.]+)(us|ms|s)`).exec(output);
  if (!match) throw new Error(`no ${percent}% latency in wrk's output:\n${output}`);
  return Number(match[1]) * { us: 0.001, ms: 1, s: 1000 }[match[2] as "us" | "ms" | "s"];
}

const GATEWAY_CPU = 0;
const LOAD_CPU = 1;

function pinTo(cpu: number, pid: number | undefined): void {
  if (pid !== undefined)
    execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const builds = (values.builds ?? "").split(",").map((entry) => {
  const [name, rest] = entry.split(/=(.*)/s);
  const [dir, ...flags] = (rest ?? "").split("|");
  if (!name || !dir) throw new Error("--builds name=dir[|node-flag…],name=dir");
  // Node flags after the folder replace the ones `switchboard serve` runs with (one build twice
  // with two heap settings, say).
  return { name, dir: resolve(dir), flags: flags.length > 0 ? flags.filter(Boolean) : [...SERVE_NODE_FLAGS] };
});
const concurrency = Number(values.c);
const first = builds[0];
if (!first) throw new Error("--builds name=dir,name=dir");
const mock = await start(join(first.dir, "upstream.js"), ["--role", "upstream"], []);
const gateways: Gateway[] = [];
for (const build of builds) {
  const execArgv = [...build.flags, "--expose-gc"];
  if (values.prof === build.name) execArgv.push("--cpu-prof", `--cpu-prof-dir=${resolve("bench/out/prof")}`);
  const args = ["--role", "gateway", "--upstream", mock.ready.url];
  const started = await start(join(build.dir, "upstream.js"), args, execArgv);
  gateways.push({ name: build.name, ...started, requests: 0, cpu: 0, perCpu: [], p50: [], p99: [] });
}
if (values.pin) {
  for (const gateway of gateways) pinTo(GATEWAY_CPU, gateway.child.pid);
  pinTo(LOAD_CPU, mock.child.pid);
  pinTo(LOAD_CPU, process.pid);
}
for (const gateway of gateways) await wrk(gateway, concurrency, "2");
const loadBefore = loadavg()[0] as number;
for (let slice = 0; slice < Number(values.slices); slice++) {
  for (const gateway of slice % 2 === 0 ? gateways : [...gateways].reverse()) {
    const before = cpuSeconds(gateway.child.pid);
    const output = await wrk(gateway, concurrency, values.seconds ?? "1");
    const used = cpuSeconds(gateway.child.pid) - before;
    if (/Non-2xx or 3xx responses/.test(output)) throw new Error(`wrk saw error statuses:\n${output}`);
    const requests = Number(/(\d+) requests in/.exec(output)?.[1] ?? Number.NaN);
    gateway.requests += requests;
    gateway.cpu += used;
    gateway.perCpu.push(requests / used);
    gateway.p50.push(latencyMs(output, "50"));
    gateway.p99.push(latencyMs(output, "99"));
  }
}
const loadAfter = loadavg()[0] as number;
for (const g of gateways) {
  console.log(
    `${g.name} c=${concurrency}${values.stream ? " stream" : ""}: ${(g.requests / g.cpu).toFixed(0)} req/CPU-s ` +
      `(median slice ${median(g.perCpu).toFixed(0)}), p50 ${median(g.p50).toFixed(3)} ms, ` +
      `p99 ${median(g.p99).toFixed(3)} ms; load average ${loadBefore.toFixed(2)} → ${loadAfter.toFixed(2)}`,
  );
  g.child.kill("SIGTERM");
}
mock.child.kill("SIGTERM");
