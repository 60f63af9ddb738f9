import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { ServiceError, serviceUnavailable } from "../../../../core/errors.js";
import type { SamplingParams } from "../../../../core/generation.js";
import type { EngineEvent, EngineStats, LocalEngine, ModelMetadata, TokenGeneration } from "../../engine.js";
import { SlotScheduler } from "../../slot-scheduler.js";
import { longestCommonPrefix } from "../../token-prefix.js";
import type { SupervisedEngine } from "../engine-status.js";
import { readGgufFacts } from "../gguf-facts.js";
import type { GpuMode } from "../in-process/llama-instance.js";
import {
  type EngineProcess,
  type EngineProcessSpec,
  ProcessSupervisor,
  type SupervisorStatus,
  type SupervisorTimings,
} from "../process-supervisor.js";
import { CompletionStream } from "./completion-stream.js";
import { llamaServerArgs, llamaServerEnv } from "./llama-server-args.js";
import { LlamaServerClient } from "./llama-server-client.js";
import { TokenizeCache } from "./tokenize-cache.js";
import { VocabTokenizer } from "./vocab-tokenizer.js";

export interface LlamaServerEngineOptions {
  /** The llama-server executable. */
  binary: string;
  modelId: string;
  /** Where the GGUF file is; resolved at load time (it may need a download first). */
  modelPath: () => Promise<string>;
  /** Tokens per slot; undefined = the model's training context, capped at contextSizeCap. */
  contextSize?: number;
  /** engines.default_context_cap */
  contextSizeCap: number;
  /** engines.gpu, for the vocabulary loaded in this process. */
  gpu: GpuMode;
  slots: number;
  threads: number;
  batchThreads?: number;
  gpuLayers: "auto" | "max" | number;
  flashAttention?: "auto" | "on" | "off";
  kvCacheType?: string;
  extraArgs?: readonly string[];
  maxQueue: number;
  /** Stop llama-server after this long unused; undefined = never. */
  idleTtlMs?: number;
  /** Where pid records of engine processes live. */
  dataDir: string;
  logger: Logger;
  /** Tokenize in this process from the model's vocabulary (default); false = always ask llama-server. */
  localTokenizer?: boolean;
  /** Restart backoff (engines.restart_backoff_ms, restart_backoff_max_ms); tests override the rest. */
  supervisor: SupervisorTimings;
}

/** How often /health is polled while llama-server loads. */
const HEALTH_POLL_MS = 25;

/**
 * llama.cpp's own llama-server as a supervised child process, driven through its native
 * endpoints with token ids in and token ids out. Switchboard keeps admission and queueing (the
 * same SlotScheduler as in-process) and picks the slot itself: each slot's KV cache is mirrored
 * here, and a request goes to the free slot sharing the longest prefix with its prompt.
 */
export class LlamaServerEngine implements LocalEngine, SupervisedEngine {
  readonly engineName = "llama-server";
  private readonly scheduler: SlotScheduler;
  readonly supervisor: ProcessSupervisor;
  private meta: ModelMetadata | undefined;
  private loading: Promise<void> | undefined;
  private modelPath: string | undefined;
  private contextSize = 0;
  private client: LlamaServerClient | undefined;
  /** Tokens each slot's KV cache holds, as far as we know; reset when the process changes. */
  private slotTokens: number[][];
  private readonly tokenizeCache = new TokenizeCache(4096);
  private newlineTokens: number[] | undefined;
  /** The tokenizer in this process, when the vocabulary loads here (else /tokenize is asked). */
  private vocab: VocabTokenizer | undefined;

  constructor(private readonly options: LlamaServerEngineOptions) {
    this.scheduler = new SlotScheduler(options.slots, options.maxQueue);
    this.slotTokens = Array.from({ length: options.slots }, () => []);
    this.supervisor = new ProcessSupervisor(this.processSpec(), {
      logger: options.logger,
      dataDir: options.dataDir,
      idleTtlMs: options.idleTtlMs,
      ...options.supervisor,
    });
    this.supervisor.onReady((process) => {
      // A new process has empty KV caches and needs its own connections.
      void this.client?.close();
      this.client = new LlamaServerClient(process, options.slots + 4);
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

  /** The engine process's state, for /ready and /metrics. */
  processStatus(): SupervisorStatus {
    return this.supervisor.status();
  }

  /** llama-server's own view of its slots (GET /slots): which are processing, what they hold. */
  async slotsInfo(): Promise<{ id: number; is_processing: boolean }[]> {
    return this.withClient((client, signal) =>
      client.json<{ id: number; is_processing: boolean }[]>("GET", "/slots", undefined, signal),
    );
  }

  stats(): EngineStats {
    return { slots: this.scheduler.slots, busySlots: this.scheduler.busy, queued: this.scheduler.queued };
  }

  async tokenize(text: string, options: { special: boolean; continuation?: boolean }): Promise<number[]> {
    if (text === "") return [];
    if (this.vocab) return this.vocab.tokenize(text, options);
    const key = `${options.special ? 1 : 0}${options.continuation ? 1 : 0}${text}`;
    const cached = this.tokenizeCache.get(key);
    if (cached) return cached;
    const tokens = options.continuation
      ? await this.tokenizeContinuation(text, options.special)
      : await this.rawTokenize(text, options.special);
    this.tokenizeCache.set(key, tokens);
    return tokens;
  }

  async detokenize(tokens: readonly number[]): Promise<string> {
    if (tokens.length === 0) return "";
    if (this.vocab) return this.vocab.detokenize(tokens);
    const { content } = await this.withClient((client, signal) =>
      client.json<{ content: string }>("POST", "/detokenize", { tokens }, signal),
    );
    return content;
  }

  async *generate(req: TokenGeneration, signal: AbortSignal): AsyncGenerator<EngineEvent> {
    const prompt = req.promptTokens;
    const lease = await this.scheduler.acquire(signal, (free) => this.pickSlotFor(prompt, free));
    const slot = lease.slot;
    let processLease: Awaited<ReturnType<ProcessSupervisor["acquire"]>> | undefined;
    let generated: number[] = [];
    let started = false;
    try {
      processLease = await this.supervisor.acquire(signal);
      const process = processLease.process;
      const client = this.clientFor(process);
      if (req.maxTokens <= 0) {
        yield { type: "prompt", promptTokens: prompt.length, cachedTokens: this.expectedReuse(slot, prompt) };
        yield { type: "end", reason: "length" };
        return;
      }
      // What llama-server will hold in this slot whatever happens next: the prompt, then what it generates.
      this.slotTokens[slot] = [...prompt];
      const stream = client.stream(
        "/completion",
        this.completionBody(req, slot),
        AbortSignal.any([signal, process.signal]),
      );
      const completion = new CompletionStream(req.topLogprobs);
      generated = completion.generated;
      for await (const message of stream) {
        if (!started) {
          started = true;
          yield {
            type: "prompt",
            promptTokens: prompt.length,
            cachedTokens: cachedFrom(message) ?? this.expectedReuse(slot, prompt),
          };
        }
        for (const event of completion.push(message)) {
          yield event;
          if (event.type === "end") return;
        }
      }
      if (signal.aborted) return;
      throw new Error("llama-server ended the stream without a final message");
    } catch (err) {
      if (signal.aborted) return;
      throw this.failure(err, started);
    } finally {
      if (generated.length > 0) this.slotTokens[slot] = [...prompt, ...generated];
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
    await this.client?.close();
    this.client = undefined;
  }

  private processSpec(): EngineProcessSpec {
    return {
      kind: "llama-server",
      model: this.options.modelId,
      command: this.options.binary,
      args: ({ port }) =>
        llamaServerArgs(
          {
            modelPath: this.modelPath as string,
            contextSize: this.contextSize,
            slots: this.options.slots,
            threads: this.options.threads,
            batchThreads: this.options.batchThreads,
            gpuLayers: this.options.gpuLayers,
            flashAttention: this.options.flashAttention,
            kvCacheType: this.options.kvCacheType,
            extraArgs: this.options.extraArgs,
          },
          port,
        ),
      env: ({ apiKey }) => llamaServerEnv(apiKey),
      waitReady: (process, signal) => waitForHealth(process, signal),
    };
  }

  private async doLoad(): Promise<void> {
    this.modelPath = await this.options.modelPath();
    const facts = await readGgufFacts(this.modelPath);
    this.contextSize =
      this.options.contextSize ?? Math.min(facts.trainContextSize, this.options.contextSizeCap);
    const [vocab] = await Promise.all([
      this.options.localTokenizer === false
        ? undefined
        : VocabTokenizer.open(this.modelPath, this.options.logger, this.options.gpu),
      this.supervisor.start(),
    ]);
    this.vocab = vocab;
    const props = await this.withClient((client, signal) =>
      client.json<LlamaServerProps>("GET", "/props", undefined, signal),
    );
    const models = await this.withClient((client, signal) =>
      client.json<{ data?: { meta?: { n_vocab?: number; n_embd?: number; n_ctx_train?: number } }[] }>(
        "GET",
        "/v1/models",
        undefined,
        signal,
      ),
    );
    const modelMeta = models.data?.[0]?.meta ?? {};
    const bosToken = props.bos_token || undefined;
    let bosTokenId: number | undefined;
    let addBosToken: boolean;
    if (this.vocab) {
      ({ id: bosTokenId, prepend: addBosToken } = this.vocab.bos());
    } else {
      bosTokenId = bosToken ? await this.singleToken(bosToken) : undefined;
      // Whether llama.cpp itself would put BOS in front: tokenize with special tokens added.
      const withSpecial = await this.withClient((client, signal) =>
        client.json<{ tokens: number[] }>("POST", "/tokenize", { content: "a", add_special: true }, signal),
      );
      addBosToken = bosTokenId !== undefined && withSpecial.tokens[0] === bosTokenId;
    }
    this.meta = {
      contextSize: props.default_generation_settings?.n_ctx ?? this.contextSize,
      trainContextSize: modelMeta.n_ctx_train ?? facts.trainContextSize,
      // The GGUF's own template (as in-process reads it), not llama-server's fallback.
      chatTemplate: facts.chatTemplate,
      bosToken,
      eosToken: props.eos_token || undefined,
      addBosToken,
      bosTokenId,
      vocabSize: modelMeta.n_vocab ?? facts.vocabSize,
      longestTokenBytes: facts.longestTokenBytes,
      embeddingSize: modelMeta.n_embd ?? facts.embeddingSize,
      slots: this.options.slots,
    };
  }

  /** Runs a call against the current process (starting it if it idled out). */
  private async withClient<T>(
    call: (client: LlamaServerClient, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const signal = AbortSignal.timeout(60_000);
    const lease = await this.supervisor.acquire(signal);
    try {
      return await call(this.clientFor(lease.process), AbortSignal.any([signal, lease.process.signal]));
    } catch (err) {
      throw this.failure(err, false);
    } finally {
      lease.release();
    }
  }

  private clientFor(process: EngineProcess): LlamaServerClient {
    if (!this.client || this.client.process !== process) {
      void this.client?.close();
      this.client = new LlamaServerClient(process, this.options.slots + 4);
    }
    return this.client;
  }

  private async rawTokenize(text: string, special: boolean): Promise<number[]> {
    const { tokens } = await this.withClient((client, signal) =>
      client.json<{ tokens: number[] }>(
        "POST",
        "/tokenize",
        { content: text, add_special: false, parse_special: special },
        signal,
      ),
    );
    return tokens;
  }

  /**
   * Text that continues a prompt: SPM tokenizers put a space in front of the start of a text, so
   * the text is tokenized after a newline and the newline's tokens are cut off again (what
   * node-llama-cpp's "trimLeadingSpace" does, so both engines tokenize alike).
   */
  private async tokenizeContinuation(text: string, special: boolean): Promise<number[]> {
    this.newlineTokens ??= await this.rawTokenize("\n", false);
    const newline = this.newlineTokens;
    if (text.startsWith("\n")) return this.rawTokenize(text, special);
    const tokens = await this.rawTokenize(`\n${text}`, special);
    if (newline.length > 0 && newline.every((t, i) => tokens[i] === t)) return tokens.slice(newline.length);
    return this.rawTokenize(text, special);
  }

  private async singleToken(text: string): Promise<number | undefined> {
    const tokens = await this.rawTokenize(text, true);
    return tokens.length === 1 ? tokens[0] : undefined;
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

  private expectedReuse(slot: number, prompt: readonly number[]): number {
    return Math.max(0, Math.min(longestCommonPrefix(this.slotTokens[slot] ?? [], prompt), prompt.length - 1));
  }

  private completionBody(req: TokenGeneration, slot: number): Record<string, unknown> {
    const body: Record<string, unknown> = {
      prompt: req.promptTokens,
      n_predict: req.maxTokens,
      stream: true,
      cache_prompt: true,
      id_slot: slot,
      // A first message as the prompt starts, saying how much of it the slot's cache held.
      return_progress: true,
      ...samplingFields(req.sampling, this.meta?.contextSize ?? this.contextSize),
    };
    if (req.topLogprobs !== undefined) {
      // The model's own distribution (before temperature and truncation), as in-process reports it.
      body.n_probs = Math.max(1, req.topLogprobs);
      body.post_sampling_probs = false;
    }
    return body;
  }

  /** Every failure reaching a client is a 503 (the cause goes to the log). */
  private failure(err: unknown, started: boolean): ServiceError {
    if (err instanceof ServiceError) return err;
    const status = this.supervisor.status();
    const gone = status.state !== "ready";
    this.options.logger.warn(
      { err, engine: "llama-server", started, processState: status.state },
      started ? "generation failed mid-stream" : "llama-server request failed",
    );
    return serviceUnavailable(
      gone
        ? `The engine of model '${this.options.modelId}' stopped unexpectedly; it is being restarted. Retry the request.`
        : `The engine of model '${this.options.modelId}' failed to process the request.`,
      err,
    );
  }
}

interface LlamaServerProps {
  default_generation_settings?: { n_ctx?: number };
  total_slots?: number;
  bos_token?: string;
  eos_token?: string;
  chat_template?: string;
}

/** Polls /health until llama-server has loaded the model (503 while loading). */
async function waitForHealth(process: EngineProcess, signal: AbortSignal): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    try {
      const response = await fetch(`${process.baseUrl}/health`, {
        signal,
        headers: { authorization: `Bearer ${process.apiKey}` },
      });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch (err) {
      if (signal.aborted) throw err;
      // Not listening yet.
    }
    await sleep(HEALTH_POLL_MS, undefined, { signal });
  }
}

/**
 * OpenAI sampling on llama.cpp's sampler chain: temperature then top_p (the OpenAI order), no
 * top-k or min-p, penalties over the text so far, logit bias as [[id, bias]] (false bans a token).
 */
function samplingFields(sampling: SamplingParams, contextSize: number): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    temperature: sampling.temperature,
    top_p: sampling.topP,
    top_k: 0,
    min_p: 0,
    typical_p: 1,
    samplers: ["penalties", "temperature", "top_p"],
    ignore_eos: false,
  };
  if (sampling.seed !== undefined) fields.seed = sampling.seed;
  if (sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0) {
    fields.presence_penalty = sampling.presencePenalty;
    fields.frequency_penalty = sampling.frequencyPenalty;
    fields.repeat_penalty = 1;
    fields.repeat_last_n = contextSize;
  }
  if (sampling.logitBias && sampling.logitBias.size > 0) {
    fields.logit_bias = [...sampling.logitBias].map(([token, bias]) => [token, bias <= -100 ? false : bias]);
  }
  return fields;
}

/** Prompt tokens reused from the slot's cache: from the first progress message (or final timings). */
function cachedFrom(message: Record<string, unknown>): number | undefined {
  const progress = message.prompt_progress as { cache?: unknown } | undefined;
  if (typeof progress?.cache === "number") return progress.cache;
  const timings = message.timings as { cache_n?: unknown } | undefined;
  return typeof timings?.cache_n === "number" ? timings.cache_n : undefined;
}
