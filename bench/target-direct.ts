import {
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { loadConfig } from "../src/config/load.js";
import type {
  BenchRequest,
  BenchSession,
  BenchTarget,
  EngineSettings,
  RequestResult,
  ResourceUsage,
} from "./harness.js";
import { ArrivalClock, mib } from "./harness.js";
import { renderChatMl } from "./prompts.js";

/** The server's engine settings from the same environment (context cap, gpu), for a like-for-like run. */
const SERVER_ENGINES = loadConfig({ env: process.env }).engines;

let llama: Promise<Llama> | undefined;

function sharedLlama(): Promise<Llama> {
  llama ??= getLlama({
    build: "never",
    // As src/backends/local/engines/in-process/llama-instance.ts: GPU auto-detected unless off.
    gpu: SERVER_ENGINES.gpu === "off" ? false : "auto",
    logLevel: LlamaLogLevel.warn,
  });
  return llama;
}

/** The compute backend the binding chose: false = CPU only, or "cuda", "vulkan", "metal". */
export async function directLlamaGpu(): Promise<string | false> {
  return (await sharedLlama()).gpu;
}

/**
 * node-llama-cpp with nothing around it: the same binding options, model, context settings,
 * ChatML prompt text, tokenization and sampling settings the server uses, and a bare token loop
 * (no detokenizing, no HTTP). The ceiling the HTTP path is measured against.
 */
export const directNodeLlamaCpp: BenchTarget = {
  name: "direct-node-llama-cpp",
  description: "node-llama-cpp in the bench process: sequence.evaluate on the server's context settings",
  baseline: true,
  promptCache: false,
  async open(settings: EngineSettings): Promise<BenchSession> {
    const model = await (await sharedLlama()).loadModel({ modelPath: settings.modelPath, gpuLayers: "auto" });
    const contextSize =
      settings.contextSize ?? Math.min(model.trainContextSize, SERVER_ENGINES.default_context_cap);
    const context = await model.createContext({
      sequences: settings.streams,
      contextSize,
      threads: settings.threads,
    });
    const sequences = Array.from({ length: settings.streams }, () => context.getSequence());
    return new DirectSession(model, context, sequences);
  },
};

class DirectSession implements BenchSession {
  constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequences: LlamaContextSequence[],
  ) {}

  run(requests: BenchRequest[]): Promise<RequestResult[]> {
    if (requests.length > this.sequences.length) throw new Error("more requests than sequences");
    return Promise.all(requests.map((r, i) => this.generate(this.sequences[i] as LlamaContextSequence, r)));
  }

  resources(): ResourceUsage {
    return { "bench process RSS": mib(process.memoryUsage().rss) };
  }

  pids(): number[] {
    return [];
  }

  async close(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
  }

  private async generate(sequence: LlamaContextSequence, req: BenchRequest): Promise<RequestResult> {
    // Each request starts from an empty sequence: nothing of an earlier prompt is reused.
    await sequence.clearHistory();
    const started = performance.now();
    let tokens = this.model.tokenize(renderChatMl(req.messages), true);
    const bos = this.model.tokens.bos;
    if (this.model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos)
      tokens = [bos, ...tokens];
    let ttftMs = Number.NaN;
    let generated = 0;
    const arrivals = new ArrivalClock();
    if (req.maxTokens > 0) {
      const evaluation = sequence.evaluate(tokens as Token[], {
        // The server's sampling for temperature/top_p/seed requests: every token (top_k 0), top_p 1.
        temperature: req.temperature,
        topP: 1,
        topK: 0,
        seed: req.seed,
        // A fixed number of tokens: an end-of-generation token does not stop the loop.
        yieldEogToken: true,
      });
      for await (const _token of evaluation) {
        if (generated === 0) ttftMs = performance.now() - started;
        arrivals.tick();
        generated++;
        if (generated >= req.maxTokens) break;
      }
    }
    return { ttftMs, completionTokens: generated, promptTokens: tokens.length, interTokenMs: arrivals.gaps };
  }
}
