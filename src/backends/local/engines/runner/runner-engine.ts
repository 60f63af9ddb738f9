import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { ServiceError, serviceUnavailable } from "../../../../core/errors.js";
import type { EngineEvent, EngineStats, LocalEngine, ModelMetadata, TokenGeneration } from "../../engine.js";
import { SlotScheduler } from "../../slot-scheduler.js";
import { longestCommonPrefix } from "../../token-prefix.js";
import type { SupervisedEngine } from "../engine-status.js";
import type { GpuMode } from "../in-process/llama-instance.js";
import { VocabTokenizer } from "../llama-server/vocab-tokenizer.js";
import {
  type EngineProcess,
  type EngineProcessSpec,
  ProcessSupervisor,
  type SupervisorStatus,
  type SupervisorTimings,
} from "../process-supervisor.js";
import {
  decodeToken,
  type RunnerLoadOptions,
  S_DONE,
  S_END,
  S_ERROR,
  S_PROMPT,
  S_TOKEN,
  toWireGeneration,
} from "./protocol.js";
import { RunnerChannel, type RunnerStream } from "./runner-channel.js";

export interface RunnerEngineOptions {
  modelId: string;
  /** Where the GGUF file is; resolved at load time (it may need a download first). */
  modelPath: () => Promise<string>;
  /** Tokens per slot; undefined = the model's training context, capped at contextSizeCap (as in-process). */
  contextSize?: number;
  /** engines.default_context_cap */
  contextSizeCap: number;
  /** engines.gpu, for the runner and the vocabulary loaded in this process. */
  gpu: GpuMode;
  /** engines.runner.log_level: the runner's own log level. */
  logLevel: RunnerLoadOptions["logLevel"];
  slots: number;
  threads: number;
  gpuLayers: "auto" | "max" | number;
  maxQueue: number;
  /** Stop the runner after this long unused; undefined = never. */
  idleTtlMs?: number;
  /** Where pid records of engine processes live. */
  dataDir: string;
  logger: Logger;
  /** Tokenize in this process from the model's vocabulary (default); false = ask the runner. */
  localTokenizer?: boolean;
  /** Restart backoff (engines.restart_backoff_ms, restart_backoff_max_ms); tests override the rest. */
  supervisor: SupervisorTimings;
}

/**
 * node-llama-cpp in a supervised child Node process (the "runner", runner-child.ts) with
 * UV_THREADPOOL_SIZE=1, driven over Node's IPC channel: the model cannot take the server down
 * with it, and its token loop runs without the server's libuv work in the way.
 *
 * Admission and queueing stay here (the same SlotScheduler as in-process, so 429s and queue
 * metrics are the same); the slot is picked here from a mirror of what each runner slot's KV
 * cache holds (prompt + generated tokens, trimmed to the length the runner reports), and the
 * runner's in-process engine runs the generation on that slot and sends its events back one
 * message each.
 */
export class RunnerEngine implements LocalEngine, SupervisedEngine {
  readonly engineName = "runner";
  readonly supervisor: ProcessSupervisor;
  private readonly scheduler: SlotScheduler;
  private meta: ModelMetadata | undefined;
  private loading: Promise<void> | undefined;
  private modelPath: string | undefined;
  /** Tokens each slot's KV cache holds, as far as we know; reset when the process changes. */
  private slotTokens: number[][];
  private readonly channels = new WeakMap<EngineProcess, RunnerChannel>();
  private vocab: VocabTokenizer | undefined;

  constructor(private readonly options: RunnerEngineOptions) {
    this.scheduler = new SlotScheduler(options.slots, options.maxQueue);
    this.slotTokens = Array.from({ length: options.slots }, () => []);
    this.supervisor = new ProcessSupervisor(this.processSpec(), {
      logger: options.logger,
      dataDir: options.dataDir,
      idleTtlMs: options.idleTtlMs,
      ...options.supervisor,
    });
    this.supervisor.onReady(() => {
      // A new process starts with empty KV caches.
      this.slotTokens = Array.from({ length: options.slots }, () => []);
    });
  }

  load(): Promise<void> {
    this.loading ??= this.doLoad().catch((err) => {
      this.loading = undefined;
      throw err;
    });
    return this.loading;
  }

  isLoaded(): boolean {
    return this.meta !== undefined;
  }

  metadata(): ModelMetadata {
    if (!this.meta) throw new Error("model is not loaded");
    return this.meta;
  }

  /** The runner process's state, for /ready and /metrics. */
  processStatus(): SupervisorStatus {
    return this.supervisor.status();
  }

  /** What the runner is doing: generations in progress there (they outlive an abort by up to a token). */
  async runnerStatus(): Promise<{ running: number }> {
    return (await this.withChannel((channel, signal) => channel.call({ method: "status" }, signal))) as {
      running: number;
    };
  }

  stats(): EngineStats {
    return { slots: this.scheduler.slots, busySlots: this.scheduler.busy, queued: this.scheduler.queued };
  }

  async tokenize(text: string, options: { special: boolean; continuation?: boolean }): Promise<number[]> {
    if (text === "") return [];
    if (this.vocab) return this.vocab.tokenize(text, options);
    return (await this.withChannel((channel, signal) =>
      channel.call({ method: "tokenize", text, ...options }, signal),
    )) as number[];
  }

  async detokenize(tokens: readonly number[]): Promise<string> {
    if (tokens.length === 0) return "";
    if (this.vocab) return this.vocab.detokenize(tokens);
    return (await this.withChannel((channel, signal) =>
      channel.call({ method: "detokenize", tokens }, signal),
    )) as string;
  }

  async *generate(req: TokenGeneration, signal: AbortSignal): AsyncGenerator<EngineEvent> {
    const prompt = req.promptTokens;
    const lease = await this.scheduler.acquire(signal, (free) => this.pickSlotFor(prompt, free));
    const slot = lease.slot;
    let processLease: Awaited<ReturnType<ProcessSupervisor["acquire"]>> | undefined;
    let stream: RunnerStream | undefined;
    const generated: number[] = [];
    /** What the runner says its slot holds at the end (undefined: not known). */
    let held: number | undefined;
    let started = false;
    const onAbort = () => stream?.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      processLease = await this.supervisor.acquire(signal);
      const channel = this.channelFor(processLease.process);
      stream = channel.generate(slot, toWireGeneration(req));
      if (signal.aborted) stream.close();
      for (;;) {
        const message = await stream.next();
        if (message === undefined) return;
        switch (message[1]) {
          case S_TOKEN: {
            const event = decodeToken(message);
            if (event.token >= 0) generated.push(event.token);
            yield event;
            break;
          }
          case S_PROMPT:
            started = true;
            yield { type: "prompt", promptTokens: message[2], cachedTokens: message[3] };
            break;
          case S_END:
            held = message[3];
            yield { type: "end", reason: message[2] };
            return;
          case S_DONE:
            held = message[2];
            return;
          case S_ERROR:
            throw new Error(`the runner failed: ${message[2]}`);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      throw this.failure(err, started);
    } finally {
      signal.removeEventListener("abort", onAbort);
      stream?.close();
      // The runner keeps what it evaluated in the slot: the prompt, then what it generated.
      if (processLease && this.supervisor.status().pid === processLease.process.pid) {
        const tokens = [...prompt, ...generated];
        this.slotTokens[slot] = held === undefined ? tokens : tokens.slice(0, held);
      }
      processLease?.release();
      lease.release();
    }
  }

  async close(): Promise<void> {
    this.scheduler.rejectAll(serviceUnavailable("The model is shutting down."));
    this.meta = undefined;
    this.loading = undefined;
    await this.supervisor.close();
    await this.vocab?.dispose();
    this.vocab = undefined;
  }

  private processSpec(): EngineProcessSpec {
    const entry = runnerEntry();
    return {
      kind: "runner",
      model: this.options.modelId,
      command: process.execPath,
      args: () => entry,
      env: () => runnerEnv(),
      ipc: true,
      waitReady: async (process, signal) => {
        const channel = new RunnerChannel(process);
        this.channels.set(process, channel);
        const meta = await channel.load(
          {
            modelPath: this.modelPath as string,
            contextSize: this.options.contextSize,
            contextSizeCap: this.options.contextSizeCap,
            slots: this.options.slots,
            threads: this.options.threads,
            gpuLayers: this.options.gpuLayers,
            gpu: this.options.gpu,
            logLevel: this.options.logLevel,
          },
          signal,
        );
        this.meta ??= meta;
      },
    };
  }

  private async doLoad(): Promise<void> {
    this.modelPath = await this.options.modelPath();
    const [vocab] = await Promise.all([
      this.options.localTokenizer === false
        ? undefined
        : VocabTokenizer.open(this.modelPath, this.options.logger, this.options.gpu),
      this.supervisor.start(),
    ]);
    this.vocab = vocab;
    if (!this.meta) throw new Error("the runner reported no model metadata");
  }

  /** Runs a call against the current process (starting it if it idled out). */
  private async withChannel<T>(
    call: (channel: RunnerChannel, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const signal = AbortSignal.timeout(60_000);
    const lease = await this.supervisor.acquire(signal);
    try {
      return await call(this.channelFor(lease.process), AbortSignal.any([signal, lease.process.signal]));
    } catch (err) {
      throw this.failure(err, false);
    } finally {
      lease.release();
    }
  }

  private channelFor(process: EngineProcess): RunnerChannel {
    const channel = this.channels.get(process);
    if (!channel) throw new Error("the runner process has no channel");
    return channel;
  }

  private pickSlotFor(prompt: readonly number[], free: readonly number[]): number {
    let best = free[0] as number;
    let bestLength = -1;
    for (const slot of free) {
      const length = longestCommonPrefix(this.slotTokens[slot] ?? [], prompt);
      if (length > bestLength) {
        best = slot;
        bestLength = length;
      }
    }
    return best;
  }

  /** Every failure reaching a client is a 503 (the cause goes to the log). */
  private failure(err: unknown, started: boolean): ServiceError {
    if (err instanceof ServiceError) return err;
    const state = this.supervisor.status().state;
    this.options.logger.warn(
      { err, engine: "runner", started, processState: state },
      started ? "generation failed mid-stream" : "runner request failed",
    );
    return serviceUnavailable(
      state !== "ready"
        ? `The engine of model '${this.options.modelId}' stopped unexpectedly; it is being restarted. Retry the request.`
        : `The engine of model '${this.options.modelId}' failed to process the request.`,
      err,
    );
  }
}

/**
 * The runner's node arguments: the compiled runner-child.js next to this module, or, when the
 * server runs from its TypeScript sources (tests), runner-child.ts through a transpiling loader.
 */
export function runnerEntry(): string[] {
  const here = import.meta.url;
  if (here.endsWith(".ts")) {
    return [
      "--import",
      new URL("./dev-ts-loader.mjs", here).href,
      fileURLToPath(new URL("./runner-child.ts", here)),
    ];
  }
  return [fileURLToPath(new URL("./runner-child.js", here))];
}

/**
 * The runner's environment: ours, with libuv's thread pool at one thread (node-llama-cpp's token
 * loop then keeps ggml's workers; the server's own pool is left as it is) and without NODE_OPTIONS
 * (the runner's flags are its own).
 */
export function runnerEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (key === "NODE_OPTIONS" || key.startsWith("NODE_CHANNEL_")) continue;
    env[key] = value;
  }
  env.UV_THREADPOOL_SIZE = "1";
  return env;
}
