import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { stringify as toYaml } from "yaml";
import { SERVE_NODE_FLAGS } from "../src/cli/node-flags.js";
import { validateConfig } from "../src/config/load.js";
import { localModelSchema } from "../src/config/schema.js";
import { createLogger } from "../src/observability/logger.js";
import { type RunningServer, startServer } from "../src/server.js";
import type {
  BenchRequest,
  BenchSession,
  BenchTarget,
  EngineSettings,
  RequestResult,
  ResourceUsage,
} from "./harness.js";
import { ArrivalClock, mib, progress } from "./harness.js";

export type HttpMode = "child" | "in-process";

export interface SwitchboardHttpOptions {
  /** child: `node build/src/main.js serve` in its own process (realistic); in-process: startServer here. */
  mode: HttpMode;
  /** Extra node flags for the child server, e.g. --cpu-prof (child mode only). */
  nodeArgs?: string[];
  /**
   * The server's local engine, pinned so that `engine: auto` cannot silently switch what a row
   * measures. Set only where the config schema has the field (older trees have in-process only).
   */
  engine?: "in-process" | "llama-server" | "runner";
}

const MODEL_ID = "bench";
const ADMIN_KEY = `sb-bench-admin-${randomBytes(12).toString("hex")}`;
const MAIN_JS = fileURLToPath(new URL("../src/main.js", import.meta.url));

/** Server children still running; a bench that dies must not leave them behind. */
const liveChildren = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

/**
 * The full HTTP path: the official openai SDK streams chat completions from a Switchboard server
 * (Fastify, validation, chat template, local backend, in-process engine, SSE), with usage.
 */
export function switchboardHttp(options: SwitchboardHttpOptions): BenchTarget {
  const child = options.mode === "child";
  const engine = options.engine ?? "in-process";
  const name = engine === "in-process" ? "switchboard-http" : `switchboard-http-${engine}`;
  return {
    name: child ? name : `${name} [same process]`,
    description:
      (child
        ? "openai SDK in the bench process -> `switchboard serve` in a child process (loopback HTTP, SSE)"
        : "openai SDK, server and engine all in the bench process (one Node process, shared cores)") +
      `, ${engine} engine`,
    promptCache: true,
    async open(settings: EngineSettings): Promise<BenchSession> {
      const model: Record<string, unknown> = {
        id: MODEL_ID,
        source: settings.modelPath,
        parallel: settings.streams,
        threads: settings.threads,
      };
      if (schemaHasEngineChoice()) model.engine = engine;
      else if (engine !== "in-process") throw new Error(`this tree's server has no '${engine}' engine`);
      if (settings.contextSize !== undefined) model.context_size = settings.contextSize;
      const dataDir = await mkdtemp(join(tmpdir(), "switchboard-bench-"));
      const config = {
        host: "127.0.0.1",
        log_level: "warn",
        demo_model: false,
        data_dir: dataDir,
        // Only to create the project key the requests use (see provisionKey).
        admin_key: ADMIN_KEY,
        models: [model],
      };
      return child
        ? ChildServerSession.start(config, dataDir, options.nodeArgs ?? [])
        : InProcessServerSession.start(config, dataDir);
    },
  };
}

abstract class HttpSession implements BenchSession {
  protected readonly client: OpenAI;

  constructor(
    baseUrl: string,
    apiKey: string,
    protected readonly dataDir: string,
  ) {
    this.client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0, timeout: 600_000 });
  }

  run(requests: BenchRequest[]): Promise<RequestResult[]> {
    return Promise.all(requests.map((r) => this.stream(r)));
  }

  abstract resources(): ResourceUsage;
  abstract pids(): number[];
  abstract close(): Promise<void>;

  private async stream(req: BenchRequest): Promise<RequestResult> {
    const started = performance.now();
    const { data: stream, response } = await this.client.chat.completions
      .create({
        model: MODEL_ID,
        messages: req.messages,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: req.maxTokens,
        temperature: req.temperature,
        seed: req.seed,
      })
      .withResponse();
    // The server sends its headers once the first token is ready; this says how long that took it.
    const processing = Number(response.headers.get("openai-processing-ms"));
    let ttftMs = Number.NaN;
    let usage: OpenAI.CompletionUsage | undefined;
    const arrivals = new ArrivalClock();
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        arrivals.tick();
      }
      if (chunk.usage) usage = chunk.usage;
    }
    if (!usage) throw new Error("the stream carried no usage chunk");
    return {
      ttftMs,
      completionTokens: usage.completion_tokens,
      promptTokens: usage.prompt_tokens,
      cachedTokens: usage.prompt_tokens_details?.cached_tokens,
      serverTtftMs: Number.isFinite(processing) ? processing : undefined,
      interTokenMs: arrivals.gaps,
    };
  }
}

class InProcessServerSession extends HttpSession {
  private constructor(
    private readonly server: RunningServer,
    apiKey: string,
    dataDir: string,
  ) {
    super(server.url, apiKey, dataDir);
  }

  static async start(config: Record<string, unknown>, dataDir: string): Promise<InProcessServerSession> {
    const valid = validateConfig({ ...config, port: 0 });
    const server = await startServer(valid, { logger: createLogger("warn") });
    try {
      return new InProcessServerSession(server, await provisionKey(server.url), dataDir);
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  resources(): ResourceUsage {
    return { "bench process RSS (SDK + server + engine)": mib(process.memoryUsage().rss) };
  }

  pids(): number[] {
    return [];
  }

  async close(): Promise<void> {
    await this.server.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

class ChildServerSession extends HttpSession {
  private constructor(
    private readonly child: ChildProcess,
    private readonly output: () => string,
    baseUrl: string,
    apiKey: string,
    dataDir: string,
  ) {
    super(baseUrl, apiKey, dataDir);
  }

  static async start(
    config: Record<string, unknown>,
    dataDir: string,
    nodeArgs: string[],
  ): Promise<ChildServerSession> {
    const port = await freePort();
    const configPath = join(dataDir, "switchboard.yaml");
    // Validated here too, so a bad bench config fails with the schema's message, not a child's.
    validateConfig({ ...config, port });
    await writeFile(configPath, toYaml({ ...config, port }));
    // The node flags the `switchboard` command runs with, as deployed.
    const child = spawn(
      process.execPath,
      [...SERVE_NODE_FLAGS, ...nodeArgs, MAIN_JS, "serve", "--config", configPath],
      {
        stdio: ["ignore", "pipe", "pipe"],
        cwd: dataDir,
      },
    );
    liveChildren.add(child);
    child.once("exit", () => liveChildren.delete(child));
    let output = "";
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8192);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const baseUrl = `http://127.0.0.1:${port}`;
    try {
      await waitReady(baseUrl, child, () => output);
      const session = new ChildServerSession(
        child,
        () => output,
        baseUrl,
        await provisionKey(baseUrl),
        dataDir,
      );
      session.enginePid = await engineProcessPid(baseUrl);
      // Before any request: what the server holds just after loading its model.
      session.rssAtReady = readProcStatus(child.pid as number).VmRSS ?? "?";
      return session;
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
  }

  /** The server's engine process (llama-server), when its engine runs in one. */
  enginePid: number | undefined;
  rssAtReady = "?";

  serverPid(): number | undefined {
    // With the engine in the server process its CPU is the engine's: nothing of the server's own to tell apart.
    return this.enginePid === undefined ? undefined : this.child.pid;
  }

  resources(): ResourceUsage {
    const status = readProcStatus(this.child.pid as number);
    const engine = this.enginePid === undefined ? undefined : readProcStatus(this.enginePid);
    return {
      // Read as soon as /ready answers: V8's memory reducer has not run yet (it brings an idle
      // server ~35 MiB lower some 15-20 s later).
      "server child RSS right after /ready (before any request)": this.rssAtReady,
      "server child RSS": status.VmRSS ?? "?",
      "server child peak RSS": status.VmHWM ?? "?",
      ...(engine && {
        "engine process RSS": engine.VmRSS ?? "?",
        "engine process peak RSS": engine.VmHWM ?? "?",
      }),
      "bench process RSS (SDK + direct engine)": mib(process.memoryUsage().rss),
    };
  }

  pids(): number[] {
    return [this.child.pid, this.enginePid].filter((pid): pid is number => pid !== undefined);
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) resolve();
      else this.child.once("exit", () => resolve());
    });
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      progress(`server child did not stop in 20 s; killing it. Last output:\n${this.output()}`);
      this.child.kill("SIGKILL");
    }, 20_000);
    await exited;
    clearTimeout(timer);
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

function schemaHasEngineChoice(): boolean {
  return "engine" in localModelSchema.shape;
}

/**
 * A member key of a fresh project, created through the admin API: requests then take the path
 * real clients take (key verification, limits, usage recording), not the bootstrap admin's.
 */
async function provisionKey(baseUrl: string): Promise<string> {
  const admin = async (path: string, body: unknown) => {
    const res = await fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const project = await admin("/admin/projects", { name: "bench" });
  const key = await admin(`/admin/projects/${String(project.id)}/keys`, { name: "bench" });
  if (typeof key.secret !== "string") throw new Error("the admin API returned no key secret");
  return key.secret;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The pid of the engine process of the server's one model, from /ready (undefined in-process). */
async function engineProcessPid(baseUrl: string): Promise<number | undefined> {
  const res = await fetch(`${baseUrl}/ready`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  const body = (await res.json()) as { models?: { engine?: { pid?: number } }[] };
  return body.models?.[0]?.engine?.pid;
}

async function waitReady(baseUrl: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`server child exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    try {
      const res = await fetch(`${baseUrl}/ready`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server child not ready after 180 s:\n${output()}`);
}

/** VmRSS, VmHWM, ... from /proc/<pid>/status (Linux), e.g. { VmRSS: "512 MiB" }. */
function readProcStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
      const m = /^(Vm\w+):\s+(\d+) kB/.exec(line);
      if (m) out[m[1] as string] = mib(Number(m[2]) * 1024);
    }
  } catch {
    // Not Linux, or the process is gone.
  }
  return out;
}
