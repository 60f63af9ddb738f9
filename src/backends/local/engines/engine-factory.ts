import { availableParallelism } from "node:os";
import type { Logger } from "pino";
import type { Config, LocalModelConfig } from "../../../config/schema.js";
import type { EngineChoice, LlamaServerIdentity } from "../../../core/generation.js";
import { findLlamaServer, type LlamaServerBinary } from "../../../engine-build/find-llama-server.js";
import { describeLlamaServer } from "../../../engine-build/llama-server-identity.js";
import type { LocalEngine } from "../engine.js";
import { LlamaServerEngine } from "./llama-server/llama-server-engine.js";
import { RunnerEngine } from "./runner/runner-engine.js";

export type EngineName = "llama-server" | "runner" | "in-process";

/**
 * What `auto` gives up without llama-server, measured on a 2-core x64 machine with the same GGUF
 * file (bench/RESULTS.md, 2026-11-26, smollm2-135m F16): llama-server's output tokens/s relative
 * to Switchboard's runner engine at the same threads, 1.1x for one stream and 1.4-1.5x for four.
 */
export const LLAMA_SERVER_SPEEDUP = "1.1-1.5x";

/**
 * The runner's default compute threads: with its libuv pool at one thread, 2 threads gave 1.8x
 * the tokens/s of 1 on a 135M-shaped model on 2 cores (1 and 4 streams); never more than the
 * machine has. (A 64-dim toy model is the exception: it wants 1.)
 */
export const RUNNER_DEFAULT_THREADS = Math.min(2, availableParallelism());

/**
 * Picks and creates the engine of each local model: `auto` takes llama-server when a binary is
 * available (config, PATH, or a `switchboard engine build`), else the runner (node-llama-cpp in a
 * child process, faster than in-process by measurement), and says once how much faster
 * llama-server would be and how to get it.
 */
export class LocalEngineFactory {
  private binary: Promise<LlamaServerBinary | undefined> | undefined;
  private identity: Promise<LlamaServerIdentity> | undefined;
  private hinted = false;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  async create(
    model: LocalModelConfig,
    modelPath: () => Promise<string>,
  ): Promise<{ engine: LocalEngine; name: EngineName; choice: EngineChoice }> {
    const logger = this.logger.child({ model: model.id });
    const wanted = model.engine ?? "auto";
    const { engines } = this.config;
    const shared = {
      contextSizeCap: engines.default_context_cap,
      interactiveReserve: model.interactive_reserve,
      gpu: engines.gpu,
      embedding: model.kind === "embedding" ? { pooling: model.pooling } : undefined,
    };
    const supervisor = {
      backoffMs: engines.restart_backoff_ms,
      maxBackoffMs: engines.restart_backoff_max_ms,
    };
    if (wanted === "llama-server" || wanted === "auto") {
      const binary = await this.llamaServer();
      if (binary) {
        const engine = new LlamaServerEngine({
          binary: binary.path,
          modelId: model.id,
          modelPath,
          contextSize: model.context_size,
          slots: model.parallel,
          threads: model.threads ?? 1,
          batchThreads: model.batch_threads,
          gpuLayers: model.gpu_layers,
          flashAttention: model.flash_attention,
          kvCacheType: model.kv_cache_type,
          extraArgs: model.extra_args,
          maxQueue: model.max_queue,
          idleTtlMs: model.idle_ttl_ms,
          dataDir: this.config.data_dir,
          logger,
          ...shared,
          supervisor,
        });
        const choice: EngineChoice = {
          requested: wanted,
          reason: wanted === "auto" ? "llama_server_found" : "configured",
          detail:
            wanted === "auto"
              ? `engine: auto, and a llama-server binary was found (${binary.origin}).`
              : "The model's config names llama-server (engine: llama-server).",
          binary: await this.describe(binary),
        };
        return { engine, name: "llama-server", choice };
      }
      if (wanted === "llama-server") {
        throw new Error(
          `Model '${model.id}' has engine: llama-server, but no llama-server binary was found. Build one with \`switchboard engine build\`, put llama-server on PATH, or set engines.llama_server.binary.`,
        );
      }
      this.hint();
    }
    if (wanted === "in-process") {
      // Imported only when a model runs in this process: it loads node-llama-cpp with it.
      const { InProcessEngine } = await import("./in-process/in-process-engine.js");
      const engine = new InProcessEngine({
        modelPath,
        contextSize: model.context_size,
        slots: model.parallel,
        threads: model.threads ?? 1,
        gpuLayers: model.gpu_layers,
        maxQueue: model.max_queue,
        logger,
        ...shared,
      });
      const detail = "The model's config names the in-process engine (engine: in-process).";
      return { engine, name: "in-process", choice: { requested: wanted, reason: "configured", detail } };
    }
    const engine = new RunnerEngine({
      modelId: model.id,
      modelPath,
      contextSize: model.context_size,
      slots: model.parallel,
      threads: model.threads ?? RUNNER_DEFAULT_THREADS,
      gpuLayers: model.gpu_layers,
      maxQueue: model.max_queue,
      idleTtlMs: model.idle_ttl_ms,
      dataDir: this.config.data_dir,
      logger,
      ...shared,
      logLevel: engines.runner.log_level,
      supervisor,
    });
    return { engine, name: "runner", choice: runnerChoice(wanted) };
  }

  private llamaServer(): Promise<LlamaServerBinary | undefined> {
    this.binary ??= findLlamaServer(this.config.engines.llama_server).then((found) => {
      if (found)
        this.logger.info({ binary: found.path, origin: found.origin }, "local models run on llama-server");
      return found;
    });
    return this.binary;
  }

  /** The binary is the same for every model: its build (or `--version`) is read once. */
  private describe(binary: LlamaServerBinary): Promise<LlamaServerIdentity> {
    this.identity ??= describeLlamaServer(binary);
    return this.identity;
  }

  private hint(): void {
    if (this.hinted) return;
    this.hinted = true;
    this.logger.info(
      `No llama-server binary found, so local models run in a node-llama-cpp runner process. llama-server generates ${LLAMA_SERVER_SPEEDUP} the tokens/s on CPU (the most with parallel requests): run \`switchboard engine build\` once (about 5 minutes, needs cmake and a C++ compiler), put llama-server on PATH, or set engines.llama_server.binary.`,
    );
  }
}

/** Why the runner runs a model: the config named it, or `auto` found no llama-server. */
function runnerChoice(wanted: "auto" | "runner"): EngineChoice {
  if (wanted === "runner")
    return {
      requested: wanted,
      reason: "configured",
      detail: "The model's config names the runner (engine: runner).",
    };
  return {
    requested: wanted,
    reason: "no_llama_server",
    detail: `engine: auto, and no llama-server binary was found (engines.llama_server.binary unset, none on PATH, no \`switchboard engine build\` in the cache), so the runner. llama-server generates ${LLAMA_SERVER_SPEEDUP} the tokens/s on CPU: run \`switchboard engine build\` once, put llama-server on PATH, or set engines.llama_server.binary.`,
  };
}
