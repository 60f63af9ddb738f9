import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import { readGgufFacts } from "../src/backends/local/engines/gguf-facts.js";
import { samplingFields } from "../src/backends/local/engines/llama-server/completion-request.js";
import {
  llamaServerArgs,
  llamaServerEnv,
} from "../src/backends/local/engines/llama-server/llama-server-args.js";
import { waitForHealth } from "../src/backends/local/engines/llama-server/llama-server-client.js";
import { type EngineProcess, ProcessSupervisor } from "../src/backends/local/engines/process-supervisor.js";
import { loadConfig } from "../src/config/load.js";
import { findLlamaServer } from "../src/engine-build/find-llama-server.js";
import { createLogger } from "../src/observability/logger.js";
import {
  ArrivalClock,
  type BenchRequest,
  type BenchSession,
  type BenchTarget,
  type EngineSettings,
  type RequestResult,
  type ResourceUsage,
} from "./harness.js";
import { renderChatMl } from "./prompts.js";

/** The server's engine settings from the same environment (context cap, restart backoff). */
const SERVER_ENGINES = loadConfig({ env: process.env }).engines;

/**
 * llama.cpp's llama-server driven directly, as a client of its own would: the ChatML prompt text
 * to its native /completion endpoint, streamed, one fresh connection per request. The process
 * is the one Switchboard's llama-server engine starts (same binary, same flags: slots = streams,
 * threads, context per slot), so `switchboard-http-llama-server` is measured against exactly
 * what it wraps. Two ways to ask it to sample: with the settings Switchboard sends for the same
 * request (the baseline: the ratio column is then Switchboard's own cost), and with llama-server's
 * defaults (top_k 40, min_p 0.05, ...: what a user of llama-server alone gets).
 */
export const llamaServerDirect = llamaServerTarget("switchboard");
export const llamaServerDefaults = llamaServerTarget("defaults");

type SamplerSettings = "switchboard" | "defaults";

function llamaServerTarget(samplers: SamplerSettings): BenchTarget {
  return {
    name: samplers === "switchboard" ? "llama-server-direct" : "llama-server-defaults",
    description:
      samplers === "switchboard"
        ? "llama-server (the binary and flags of Switchboard's llama-server engine) driven over loopback HTTP: prompt text to /completion, streamed, with the sampler settings Switchboard sends"
        : "the same llama-server driven the same way with its own sampler defaults (top_k 40, min_p 0.05, top_p 0.95)",
    baseline: samplers === "switchboard",
    promptCache: false,
    open: (settings) => openLlamaServer(settings, samplers),
  };
}

async function openLlamaServer(settings: EngineSettings, samplers: SamplerSettings): Promise<BenchSession> {
  const binary = await findLlamaServer({});
  if (!binary) throw new Error("no llama-server binary: run `node build/src/main.js engine build` first");
  const facts = await readGgufFacts(settings.modelPath);
  const contextSize =
    settings.contextSize ?? Math.min(facts.trainContextSize, SERVER_ENGINES.default_context_cap);
  const dataDir = await mkdtemp(join(tmpdir(), "bench-llama-server-"));
  const supervisor = new ProcessSupervisor(
    {
      kind: "llama-server",
      model: settings.modelLabel,
      command: binary.path,
      args: ({ port }) =>
        llamaServerArgs(
          {
            modelPath: settings.modelPath,
            contextSize,
            slots: settings.streams,
            threads: settings.threads,
            gpuLayers: "auto",
          },
          port,
        ),
      env: ({ apiKey }) => llamaServerEnv(apiKey),
      waitReady: waitForHealth,
    },
    {
      logger: createLogger("warn"),
      dataDir,
      backoffMs: SERVER_ENGINES.restart_backoff_ms,
      maxBackoffMs: SERVER_ENGINES.restart_backoff_max_ms,
    },
  );
  const process = await supervisor.start();
  return new LlamaServerSession(supervisor, process, dataDir, samplers);
}

/** The sampler fields Switchboard sends for a request with this temperature and seed (no extensions). */
function switchboardSampling(temperature: number, seed: number): Record<string, unknown> {
  const { ignore_eos: _, ...fields } = samplingFields(
    { temperature, topP: 1, seed, presencePenalty: 0, frequencyPenalty: 0 },
    0,
  );
  return fields;
}

class LlamaServerSession implements BenchSession {
  constructor(
    private readonly supervisor: ProcessSupervisor,
    private readonly process: EngineProcess,
    private readonly dataDir: string,
    private readonly samplers: SamplerSettings,
  ) {}

  run(requests: BenchRequest[]): Promise<RequestResult[]> {
    return Promise.all(requests.map((r) => this.stream(r)));
  }

  resources(): ResourceUsage {
    const status = readProcStatus(this.process.pid);
    return {
      "llama-server RSS": status.VmRSS ?? "?",
      "llama-server peak RSS": status.VmHWM ?? "?",
    };
  }

  pids(): number[] {
    return [this.process.pid];
  }

  async close(): Promise<void> {
    await this.supervisor.close();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private async stream(req: BenchRequest): Promise<RequestResult> {
    const started = performance.now();
    const response = await request(`${this.process.baseUrl}/completion`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.process.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        prompt: renderChatMl(req.messages),
        n_predict: req.maxTokens,
        stream: true,
        cache_prompt: true,
        temperature: req.temperature,
        seed: req.seed,
        // The sampling Switchboard asks for on a temperature/seed request (completion-request.ts).
        ...(this.samplers === "switchboard" && switchboardSampling(req.temperature, req.seed)),
      }),
      reset: true,
    });
    if (response.statusCode !== 200)
      throw new Error(`llama-server: ${response.statusCode} ${await response.body.text()}`);
    let ttftMs = Number.NaN;
    const arrivals = new ArrivalClock();
    let final: Record<string, unknown> | undefined;
    let buffered = "";
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      buffered += chunk.toString("utf8");
      let end = buffered.indexOf("\n");
      while (end >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 1);
        end = buffered.indexOf("\n");
        if (!line.startsWith("data: ")) continue;
        const message = JSON.parse(line.slice(6)) as Record<string, unknown>;
        if (typeof message.content === "string" && message.content !== "") {
          if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
          arrivals.tick();
        }
        if (message.stop === true) final = message;
      }
    }
    if (!final) throw new Error("llama-server's stream had no final message");
    const timings = final.timings as { cache_n?: number } | undefined;
    return {
      ttftMs,
      completionTokens: Number(final.tokens_predicted),
      promptTokens: Number(final.tokens_evaluated),
      cachedTokens: timings?.cache_n,
      interTokenMs: arrivals.gaps,
    };
  }
}

function readProcStatus(pid: number): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
      const match = /^(\w+):\s+(\d+) kB$/.exec(line);
      if (match) out[match[1] as string] = `${Math.round(Number(match[2]) / 1024)} MiB`;
    }
    return out;
  } catch {
    return {};
  }
}
