import type { Logger } from "pino";
import { ServiceError, serviceUnavailable } from "../../../core/errors.js";
import type { RequestPriority } from "../../../core/generation.js";
import { linkSignals } from "../../../core/linked-signal.js";
import {
  type EmbeddingMode,
  type EngineEvent,
  type EngineGrammar,
  type EngineStats,
  grammarUnsupported,
  type LocalEngine,
  type ModelMetadata,
  notAnEmbeddingEngine,
  type TokenGeneration,
} from "../engine.js";
import { SlotScheduler } from "../slot-scheduler.js";
import type { EngineModelOptions } from "./engine-model-options.js";
import type { SupervisedEngine } from "./engine-status.js";
import { checkGrammar } from "./grammar-check.js";
import { ModelLoad } from "./model-load.js";
import {
  type EngineProcess,
  type EngineProcessSpec,
  type ProcessLease,
  ProcessSupervisor,
  type SupervisorStatus,
  type SupervisorTimings,
} from "./process-supervisor.js";
import { SlotCacheMirror } from "./slot-cache-mirror.js";
import { TokenizeCache } from "./tokenize-cache.js";

/** What every engine that runs its model in a supervised child process is configured with. */
export interface SupervisedEngineOptions extends EngineModelOptions {
  modelId: string;
  /** Stop the engine process after this long unused; undefined = never. */
  idleTtlMs?: number;
  /** Where pid records of engine processes live. */
  dataDir: string;
  logger: Logger;
  /** Restart backoff (engines.restart_backoff_ms, restart_backoff_max_ms); tests override the rest. */
  supervisor: SupervisorTimings;
  /** Load the model to embed (llama-server: --embeddings; the runner: an embedding context). */
  embedding?: EmbeddingMode;
}

/** One generation on a slot, as a transport runs it in the engine process. */
export interface SlotRun {
  readonly slot: number;
  /**
   * What the slot's KV cache holds once the generation is over (the prompt, then the tokens
   * generated), set by the transport as far as it knows; left undefined, the mirror keeps what it had.
   */
  cached?: readonly number[];
}

/**
 * A LocalEngine whose model runs in a supervised child process (llama.cpp's llama-server, or a
 * node-llama-cpp runner). Everything but the transport is here, so the engines cannot drift
 * apart: the model load, admission and queueing (the same SlotScheduler as in-process, so 429s
 * and queue metrics are the same), the choice of slot from a mirror of each slot's KV cache,
 * process status, and the mapping of failures to 503s. Tokenizing is the engine process's too:
 * loading the vocabulary here would load llama.cpp's bindings into the server. A transport only starts its process, moves requests and events, and describes the model.
 */
export abstract class SupervisedLocalEngine<Options extends SupervisedEngineOptions = SupervisedEngineOptions>
  implements LocalEngine, SupervisedEngine
{
  readonly supervisor: ProcessSupervisor;
  protected readonly scheduler: SlotScheduler;
  protected readonly slotCaches: SlotCacheMirror;
  protected readonly modelLoad = new ModelLoad(() => this.loadModel());
  /** Texts tokenized recently: each miss is a round trip to the engine process. */
  private readonly tokenizeCache = new TokenizeCache(4096);
  /** The GGUF file, once load() has resolved it. */
  protected modelPath: string | undefined;

  constructor(
    /** "llama-server", "runner": in logs, metrics, /ready and the supervisor's records. */
    readonly engineName: string,
    protected readonly options: Options,
  ) {
    this.scheduler = new SlotScheduler(options.slots, options.maxQueue, {
      interactiveReserve: options.interactiveReserve,
    });
    this.slotCaches = new SlotCacheMirror(options.slots);
    this.supervisor = new ProcessSupervisor(this.processSpec(), {
      logger: options.logger,
      dataDir: options.dataDir,
      idleTtlMs: options.idleTtlMs,
      ...options.supervisor,
    });
    this.supervisor.onReady((process) => {
      this.slotCaches.reset();
      this.onProcessReady(process);
    });
  }

  /**
   * How to run the engine process. Called from this constructor, before the subclass's own fields
   * exist: build the spec from `this.engineName`, `this.options` and closures only.
   */
  protected abstract processSpec(): EngineProcessSpec;

  /** The model's metadata, once the first process is ready. */
  protected abstract readMetadata(): Promise<ModelMetadata>;

  /**
   * Runs one generation in `process` on `run.slot` (leased here, named to the engine process) and
   * yields its events, the "prompt" event first. Sets `run.cached` as the slot's cache changes.
   */
  protected abstract generateOnSlot(
    process: EngineProcess,
    run: SlotRun,
    req: TokenGeneration,
    signal: AbortSignal,
  ): AsyncIterable<EngineEvent>;

  /** Embeds the inputs in `process` (the model was loaded in embedding mode): raw pooled vectors, in order. */
  protected abstract embedInProcess(
    process: EngineProcess,
    inputs: readonly (readonly number[])[],
    signal: AbortSignal,
  ): Promise<Float32Array[]>;

  /** Tokenizing by the engine process. */
  protected abstract tokenizeInEngine(
    text: string,
    options: { special: boolean; continuation?: boolean },
  ): Promise<number[]>;

  protected abstract detokenizeInEngine(tokens: readonly number[]): Promise<string>;

  /** Before the first process starts, with the model file known (read what the arguments need). */
  protected async beforeStart(_modelPath: string): Promise<void> {}

  /** A new process is ready (its KV caches are empty; the mirror has been reset already). */
  protected onProcessReady(_process: EngineProcess): void {}

  /** After the process has stopped on close(): release what the transport holds. */
  protected async closeTransport(): Promise<void> {}

  load(): Promise<void> {
    return this.modelLoad.load();
  }

  isLoaded(): boolean {
    return this.modelLoad.isLoaded();
  }

  metadata(): ModelMetadata {
    return this.modelLoad.metadata();
  }

  /** The engine process's state, for /ready and /metrics. */
  processStatus(): SupervisorStatus {
    return this.supervisor.status();
  }

  stats(): EngineStats {
    return { slots: this.scheduler.slots, busySlots: this.scheduler.busy, queued: this.scheduler.queued };
  }

  async tokenize(text: string, options: { special: boolean; continuation?: boolean }): Promise<number[]> {
    if (text === "") return [];
    const key = `${options.special ? 1 : 0}${options.continuation ? 1 : 0}${text}`;
    const cached = this.tokenizeCache.get(key);
    if (cached) return cached;
    const tokens = await this.tokenizeInEngine(text, options);
    this.tokenizeCache.set(key, tokens);
    return tokens;
  }

  async detokenize(tokens: readonly number[]): Promise<string> {
    if (tokens.length === 0) return "";
    return this.detokenizeInEngine(tokens);
  }

  /** Whether the engine process applies grammars (llama-server and the runner both do). */
  abstract readonly grammars: boolean;

  /** One slot per request, whatever its number of inputs: the queue and its 429s are generate()'s. */
  async embed(
    inputs: readonly (readonly number[])[],
    signal: AbortSignal,
    priority?: RequestPriority,
  ): Promise<Float32Array[]> {
    if (!this.options.embedding) throw notAnEmbeddingEngine();
    const lease = await this.scheduler.acquire(signal, undefined, priority);
    let processLease: ProcessLease | undefined;
    try {
      processLease = await this.supervisor.acquire(signal);
      return await this.embedInProcess(processLease.process, inputs, signal);
    } catch (err) {
      if (signal.aborted) throw serviceUnavailable("The request was cancelled before it completed.");
      throw this.failure(err, false);
    } finally {
      processLease?.release();
      lease.release();
    }
  }

  async *generate(req: TokenGeneration, signal: AbortSignal): AsyncGenerator<EngineEvent> {
    if (this.options.embedding) throw notAnEmbeddingEngine();
    if (req.grammar) this.checkGrammar(req.grammar);
    const prompt = req.promptTokens;
    const lease = await this.scheduler.acquire(
      signal,
      (free) => this.slotCaches.pick(prompt, free),
      req.priority,
    );
    const run: SlotRun = { slot: lease.slot };
    let processLease: ProcessLease | undefined;
    let started = false;
    try {
      processLease = await this.supervisor.acquire(signal);
      for await (const event of this.generateOnSlot(processLease.process, run, req, signal)) {
        if (event.type === "prompt") started = true;
        yield event;
      }
    } catch (err) {
      if (signal.aborted) return;
      throw this.failure(err, started);
    } finally {
      // A process that has died since took its caches along; its successor's mirror starts empty.
      if (run.cached && processLease && this.supervisor.status().pid === processLease.process.pid) {
        this.slotCaches.set(run.slot, run.cached);
      }
      processLease?.release();
      lease.release();
    }
  }

  /**
   * A grammar over the bounds llama.cpp's parser survives is refused here, before the request
   * waits for a slot. Whether it parses is the engine process's to say (the same llama.cpp
   * revision on every engine): both transports turn its refusal into a 400 `invalid_grammar`.
   */
  private checkGrammar(grammar: EngineGrammar): void {
    if (!this.grammars) throw grammarUnsupported(this.engineName);
    checkGrammar(grammar);
  }

  async close(): Promise<void> {
    this.scheduler.rejectAll(serviceUnavailable("The model is shutting down."));
    this.modelLoad.forget();
    await this.supervisor.close();
    await this.closeTransport();
  }

  /** Runs a call against the current process (starting it if it idled out), for at most a minute. */
  protected async withProcess<T>(
    call: (process: EngineProcess, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const signal = AbortSignal.timeout(60_000);
    const lease = await this.supervisor.acquire(signal);
    const linked = linkSignals(signal, lease.process.signal);
    try {
      return await call(lease.process, linked.signal);
    } catch (err) {
      throw this.failure(err, false);
    } finally {
      linked.dispose();
      lease.release();
    }
  }

  /** Every failure reaching a client is a 503 (the cause goes to the log). */
  protected failure(err: unknown, started: boolean): ServiceError {
    if (err instanceof ServiceError) return err;
    const state = this.supervisor.status().state;
    this.options.logger.warn(
      { err, engine: this.engineName, started, processState: state },
      started ? "generation failed mid-stream" : `${this.engineName} request failed`,
    );
    return serviceUnavailable(
      state !== "ready"
        ? `The engine of model '${this.options.modelId}' stopped unexpectedly; it is being restarted. Retry the request.`
        : `The engine of model '${this.options.modelId}' failed to process the request.`,
      err,
    );
  }

  private async loadModel(): Promise<ModelMetadata> {
    const modelPath = await this.options.modelPath();
    this.modelPath = modelPath;
    await this.beforeStart(modelPath);
    await this.supervisor.start();
    return this.readMetadata();
  }
}
