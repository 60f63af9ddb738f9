import {
  type ControlledEvaluateInputItem,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
  TokenBias,
} from "node-llama-cpp";
import type { Logger } from "pino";
import { invalidRequest, type ServiceError } from "../../../../core/errors.js";
import type { RequestPriority, SamplingParams } from "../../../../core/generation.js";
import { readAhead } from "../../../../core/read-ahead.js";
import {
  type EmbeddingMode,
  type EngineEvent,
  type EngineGrammar,
  type EnginePooling,
  type EngineStats,
  type LocalEngine,
  type ModelMetadata,
  notAnEmbeddingEngine,
  type PromptTokenScore,
  poolingFromId,
  type TokenCandidate,
  type TokenGeneration,
} from "../../engine.js";
import { SlotScheduler } from "../../slot-scheduler.js";
import { longestCommonPrefix } from "../../token-prefix.js";
import { TokenSampler } from "../../token-sampler.js";
import type { EngineModelOptions } from "../engine-model-options.js";
import { fimTokensOf } from "../fim-tokens.js";
import { longestTokenBytes } from "../gguf-facts.js";
import { GrammarParser } from "../grammar-check.js";
import { ModelLoad } from "../model-load.js";
import { longestPrefixSlot } from "../slot-cache-mirror.js";
import { DecodeStepBarrier } from "./decode-step-barrier.js";
import { GrammarRun, grammarBinding } from "./grammar-run.js";
import { sharedLlama } from "./llama-instance.js";

export interface InProcessEngineOptions extends EngineModelOptions {
  logger: Logger;
  /** Load the model to embed (an embedding context instead of generation sequences). */
  embedding?: EmbeddingMode;
}

/** Tokens of already-emitted text kept as context so the next piece decodes with the right spacing. */
const DETOKENIZE_CONTEXT = 8;
/** Prompt tokens scored per evaluation: each holds a whole-vocabulary distribution until it is read. */
const SCORE_CHUNK = 32;
/** What node-llama-cpp reads as "no top-k sampler" (its type says number; see samplingOptions). */
const NO_TOP_K = null as unknown as number;
/** The model's own distribution: what log probabilities report. */
const UNFILTERED = { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 0 } as const;
/** A piece still ending in U+FFFD after this many tokens is emitted as is (the model produced invalid UTF-8). */
const MAX_HELD_TOKENS = 4;

/**
 * node-llama-cpp in this process: one model, one context with `slots` sequences. Each request
 * leases a sequence; the lease goes to the free sequence whose KV cache already holds the longest
 * prefix of the new prompt, and only the rest of the prompt is evaluated (prompt caching).
 */
export class InProcessEngine implements LocalEngine {
  private llama: Llama | undefined;
  private model: LlamaModel | undefined;
  private context: LlamaContext | undefined;
  private sequences: LlamaContextSequence[] = [];
  private embeddingContext: LlamaEmbeddingContext | undefined;
  private readonly modelLoad = new ModelLoad(() => this.loadModel());
  private readonly scheduler: SlotScheduler;
  private readonly pieceCache = new Map<number, string>();
  /** Keeps the generations' next-token decodes in one batch (see DecodeStepBarrier). */
  private readonly decodeSteps = new DecodeStepBarrier();
  /** Parsed grammars, the most recently used 64. */
  private readonly grammarParser: GrammarParser;
  /** Per parsed grammar, its start state for this model (dropped with the grammar). */
  private grammarStarts = new WeakMap<LlamaGrammar, LlamaGrammarEvaluationState>();

  constructor(private readonly options: InProcessEngineOptions) {
    this.scheduler = new SlotScheduler(options.slots, options.maxQueue, {
      interactiveReserve: options.interactiveReserve,
    });
    this.grammarParser = new GrammarParser(() => sharedLlama(options.logger, options.gpu));
  }

  load(): Promise<void> {
    return this.modelLoad.load();
  }

  isLoaded(): boolean {
    return this.modelLoad.isLoaded();
  }

  metadata(): ModelMetadata {
    return this.modelLoad.metadata();
  }

  async tokenize(text: string, options: { special: boolean; continuation?: boolean }): Promise<number[]> {
    const model = this.loadedModel();
    return (
      options.continuation
        ? model.tokenize(text, options.special, "trimLeadingSpace")
        : model.tokenize(text, options.special)
    ) as number[];
  }

  async detokenize(tokens: readonly number[]): Promise<string> {
    return this.loadedModel().detokenize(tokens as Token[], false);
  }

  stats(): EngineStats {
    return { slots: this.scheduler.slots, busySlots: this.scheduler.busy, queued: this.scheduler.queued };
  }

  /** llama.cpp's grammar sampler on the native path; the grammar state filters TokenSampler's choice with logprobs. */
  readonly grammars = true;

  async embed(
    inputs: readonly (readonly number[])[],
    signal: AbortSignal,
    priority?: RequestPriority,
  ): Promise<Float32Array[]> {
    const lease = await this.scheduler.acquire(signal, undefined, priority);
    try {
      return await this.embedNow(inputs, signal);
    } finally {
      lease.release();
    }
  }

  /**
   * embed() without this engine's scheduler (a runner process: admission happens in the server).
   * node-llama-cpp 3.21's embedding context evaluates one input per call, on one sequence (its
   * native getEmbedding reads sequence 0's pooled vector only), so the inputs go one after another;
   * llama-server batches them across its slots instead.
   */
  async embedNow(inputs: readonly (readonly number[])[], signal: AbortSignal): Promise<Float32Array[]> {
    const context = this.embeddingContext;
    if (!context) throw notAnEmbeddingEngine();
    const vectors: Float32Array[] = [];
    for (const input of inputs) {
      signal.throwIfAborted();
      // A copy: node-llama-cpp adds missing start/end tokens to the array it is given.
      const embedding = await context.getEmbeddingFor([...input] as Token[]);
      vectors.push(Float32Array.from(embedding.vector));
    }
    return vectors;
  }

  async *generate(req: TokenGeneration, signal: AbortSignal): AsyncGenerator<EngineEvent> {
    if (this.embeddingContext) throw notAnEmbeddingEngine();
    // A grammar that cannot run is refused before the request waits for a slot.
    if (req.grammar) await this.grammarParser.parse(req.grammar);
    const prompt = req.promptTokens as Token[];
    const lease = await this.scheduler.acquire(
      signal,
      (free) => longestPrefixSlot(free, prompt, (slot) => this.slotTokens(slot)),
      req.priority,
    );
    try {
      yield* this.generateOnSlot(lease.slot, req, signal);
    } finally {
      lease.release();
    }
  }

  /**
   * generate() on a slot the caller already holds, bypassing this engine's scheduler (a runner
   * process: admission and slot choice happen in the server process). One generation per slot
   * at a time is the caller's to guarantee.
   */
  async *generateOnSlot(
    slot: number,
    req: TokenGeneration,
    signal: AbortSignal,
  ): AsyncGenerator<EngineEvent> {
    const model = this.loadedModel();
    const native = req.topLogprobs === undefined && nativeChainIsExact(req.sampling);
    if (!native && (req.sampling.repetitionPenalty ?? 1) !== 1) throw repetitionNeedsNativeSampler();
    const prompt = req.promptTokens as Token[];
    const grammar = req.grammar ? await this.grammarRun(req.grammar, prompt) : undefined;
    const sequence = this.sequences[slot] as LlamaContextSequence;
    const scoring = req.promptLogprobs !== undefined;
    // Scoring the prompt needs the logits after each of its tokens, which a KV cache does not keep.
    const reused = await this.reusePrefix(sequence, scoring ? [] : prompt);
    yield { type: "prompt", promptTokens: prompt.length, cachedTokens: reused };
    let pending = prompt.slice(reused);
    if (scoring) {
      yield {
        type: "prompt-logprobs",
        tokens: await this.scorePrompt(sequence, prompt, req.promptLogprobs ?? 0, signal),
      };
      // All but the last prompt token are evaluated now; the last one gives the first token's logits.
      pending = prompt.slice(-1);
    }
    if (req.maxTokens <= 0 || signal.aborted) {
      if (!signal.aborted) yield { type: "end", reason: "length" };
      return;
    }

    const decoder = new PieceDecoder(model, prompt.slice(-DETOKENIZE_CONTEXT));
    // The next token decodes (off the main thread) while this one is handed on and written out.
    const tokens = readAhead(
      native
        ? this.nativeSampling(sequence, pending, prompt, req, decoder, grammar)
        : this.sampleWithLogprobs(sequence, pending, req, decoder, grammar),
    );
    let count = 0;
    let reason: "stop" | "length" = "stop";
    for await (const sampled of tokens) {
      if (signal.aborted) return;
      count++;
      yield { type: "token", ...sampled };
      if (count >= req.maxTokens) {
        reason = "length";
        break;
      }
    }
    const rest = decoder.flush();
    if (rest) yield { type: "token", token: -1, text: rest };
    if (!signal.aborted) yield { type: "end", reason };
  }

  /**
   * Evaluates every prompt token but the last on an emptied sequence, in chunks, reading the
   * model's distribution after each: the log probability of the token that follows and the top
   * alternatives. The first token has nothing before it and gets neither.
   */
  private async scorePrompt(
    sequence: LlamaContextSequence,
    prompt: readonly Token[],
    top: number,
    signal: AbortSignal,
  ): Promise<PromptTokenScore[]> {
    const first = prompt[0];
    if (first === undefined) return [];
    const scores: PromptTokenScore[] = [{ token: first, piece: this.pieceOf(first) }];
    for (let start = 0; start < prompt.length - 1; start += SCORE_CHUNK) {
      if (signal.aborted) break;
      const end = Math.min(start + SCORE_CHUNK, prompt.length - 1);
      const input: ControlledEvaluateInputItem[] = [];
      for (let i = start; i < end; i++) {
        input.push([prompt[i] as Token, { generateNext: { probabilities: true, options: UNFILTERED } }]);
      }
      const results = await sequence.controlledEvaluate(input);
      for (let i = start; i < end; i++) {
        const distribution = results[i - start]?.next.probabilities ?? new Map<Token, number>();
        const token = prompt[i + 1] as Token;
        scores.push({
          token,
          piece: this.pieceOf(token),
          logprob: safeLog(distribution.get(token) ?? 0),
          top: this.topCandidates(distribution, top),
        });
      }
    }
    return scores;
  }

  /** The tokens a slot's KV cache holds now. */
  slotTokens(slot: number): readonly number[] {
    return (this.sequences[slot] as LlamaContextSequence | undefined)?.contextTokens ?? [];
  }

  /**
   * The fast path: llama.cpp's own sampler picks every token, and applies and advances the
   * grammar's state (read per token, so a lazy grammar takes over on the token after its trigger).
   * Ends on an end-of-generation token.
   *
   * Each token's text is decoded and shown to the grammar here, before the next token is asked
   * for (that is when llama.cpp samples it), and the sampling stops at maxTokens, so that nothing
   * read ahead past the budget reaches the decoder or the grammar.
   */
  private async *nativeSampling(
    sequence: LlamaContextSequence,
    tokens: Token[],
    prompt: readonly Token[],
    req: TokenGeneration,
    decoder: PieceDecoder,
    grammar: GrammarRun | undefined,
  ): AsyncGenerator<SampledToken> {
    const generated: Token[] = [];
    const options = this.samplingOptions(req.sampling, prompt, generated);
    if (grammar) options.grammarEvaluationState = () => grammar.active;
    const turn = this.decodeSteps.turn(req.priority);
    try {
      await turn.beforeDecode();
      for await (const token of sequence.evaluate(tokens, options)) {
        turn.afterDecode();
        generated.push(token);
        const text = decoder.push(token);
        grammar?.observe(token, text);
        yield { token, text };
        // No token past the budget is asked for: the decoder and the grammar must not see one.
        if (generated.length >= req.maxTokens) return;
        await turn.beforeDecode();
      }
    } finally {
      turn.close();
    }
  }

  /**
   * With log probabilities: llama.cpp returns the model's full, unfiltered next-token
   * distribution (temperature 1, no truncation), which is what gets reported; the request's own
   * settings are applied by TokenSampler, and its choice is fed back as the next token.
   *
   * A grammar limits TokenSampler's choice to the tokens its state allows, and is advanced by the
   * token chosen; the probabilities reported stay the model's own, before the grammar (as
   * llama-server reports them), so a chosen token may be one the model itself found unlikely.
   */
  private async *sampleWithLogprobs(
    sequence: LlamaContextSequence,
    tokens: Token[],
    req: TokenGeneration,
    decoder: PieceDecoder,
    grammar: GrammarRun | undefined,
  ): AsyncGenerator<SampledToken> {
    const model = this.loadedModel();
    const sampler = new TokenSampler(req.sampling);
    const top = req.topLogprobs ?? 0;
    let count = 0;
    const evaluation = sequence.evaluateWithMetadata(
      tokens,
      { probabilities: true },
      { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 0, yieldEogToken: true },
    );
    const turn = this.decodeSteps.turn(req.priority);
    try {
      await turn.beforeDecode();
      let next = await evaluation.next();
      turn.afterDecode();
      while (!next.done) {
        const distribution = next.value.probabilities;
        const constrained = grammar?.active !== undefined;
        const picked = constrained
          ? sampler.pick(distribution, (t) => grammar.allows(t))
          : sampler.pick(distribution);
        if (picked === undefined) throw new Error("no token the grammar allows is left to sample");
        const token = picked as Token;
        if (model.isEogToken(token)) return;
        if (constrained) grammar.accept(token);
        const text = decoder.push(token);
        grammar?.observe(token, text);
        yield {
          token,
          text,
          piece: this.pieceOf(token),
          logprob: safeLog(distribution.get(token) ?? 0),
          top: this.topCandidates(distribution, top),
        };
        if (++count >= req.maxTokens) return;
        await turn.beforeDecode();
        next = await evaluation.next(token);
        turn.afterDecode();
      }
    } finally {
      turn.close();
      await evaluation.return();
    }
  }

  async close(): Promise<void> {
    this.scheduler.rejectAll(new Error("engine closed"));
    const context = this.context;
    const embeddingContext = this.embeddingContext;
    const model = this.model;
    this.context = undefined;
    this.embeddingContext = undefined;
    this.model = undefined;
    this.modelLoad.forget();
    this.sequences = [];
    // Start states belong to the model being disposed.
    this.grammarStarts = new WeakMap();
    await context?.dispose();
    await embeddingContext?.dispose();
    await model?.dispose();
  }

  private async loadModel(): Promise<ModelMetadata> {
    const { logger } = this.options;
    const modelPath = await this.options.modelPath();
    const llama = await sharedLlama(logger, this.options.gpu);
    this.llama = llama;
    const model = await llama.loadModel({ modelPath, gpuLayers: this.options.gpuLayers });
    try {
      const contextSize =
        this.options.contextSize ?? Math.min(model.trainContextSize, this.options.contextSizeCap);
      if (this.options.embedding) {
        const pooling = embeddingPooling(model, this.options.embedding);
        this.embeddingContext = await model.createEmbeddingContext({
          contextSize,
          threads: this.options.threads,
        });
        this.model = model;
        return { ...readMetadata(model, contextSize, this.options.slots), pooling };
      }
      const context = await model.createContext({
        sequences: this.options.slots,
        contextSize,
        threads: this.options.threads,
      });
      this.sequences = Array.from({ length: this.options.slots }, () => context.getSequence());
      this.model = model;
      this.context = context;
      return readMetadata(model, context.contextSize, this.options.slots);
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  /** This generation's grammar, from the parsed grammar and its start state for this model. */
  private async grammarRun(grammar: EngineGrammar, prompt: readonly Token[]): Promise<GrammarRun> {
    const parsed = await this.grammarParser.parse(grammar);
    const model = this.loadedModel();
    let start = this.grammarStarts.get(parsed);
    if (!start) {
      start = new LlamaGrammarEvaluationState({ model, grammar: parsed });
      this.grammarStarts.set(parsed, start);
    }
    const binding = grammarBinding(this.llama as Llama);
    return new GrammarRun(model, binding, start, grammar.lazy, prompt.slice(-DETOKENIZE_CONTEXT));
  }

  private loadedModel(): LlamaModel {
    if (!this.model) throw new Error("model is not loaded");
    return this.model;
  }

  /** Keeps the cached prefix of the prompt in the sequence, erases the rest; returns tokens reused. */
  private async reusePrefix(sequence: LlamaContextSequence, prompt: readonly Token[]): Promise<number> {
    // At least one prompt token must be evaluated so there are logits to sample from.
    const reused = Math.max(
      0,
      Math.min(longestCommonPrefix(sequence.contextTokens, prompt), prompt.length - 1),
    );
    if (sequence.nextTokenIndex > reused) {
      await sequence.eraseContextTokenRanges([{ start: reused, end: sequence.nextTokenIndex }]);
    }
    return reused;
  }

  /**
   * node-llama-cpp's sampler chain for a request (see nativeChainIsExact for when it is exact).
   * Its chain runs top-k, top-p and min-p before temperature: top-k does not care, top-p is only
   * used where temperature is 1, and min-p after temperature T keeps what min-p^T keeps before it.
   * Its top-k defaults to 40 when left undefined and turns 0 into top-k over the whole
   * vocabulary (a full sort of every candidate per token: 4 ms of a 13 ms step on the benchmark
   * model); null is the one value it drops, so "every token" is said as null.
   */
  private samplingOptions(
    sampling: SamplingParams,
    prompt: readonly Token[],
    generated: Token[],
  ): SequenceEvaluateOptions {
    const model = this.loadedModel();
    const { temperature } = sampling;
    const minP = sampling.minP ?? 0;
    const options: SequenceEvaluateOptions = {
      temperature,
      topK: (sampling.topK ?? 0) > 0 ? sampling.topK : NO_TOP_K,
      topP: sampling.topP,
      minP: minP > 0 && temperature > 0 ? minP ** temperature : minP,
      seed: sampling.seed ?? Math.floor(Math.random() * 2 ** 31),
    };
    const repeat = sampling.repetitionPenalty ?? 1;
    if (sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0 || repeat !== 1) {
      // A repetition penalty looks at the prompt too (as llama.cpp's does); the others at the answer.
      const punished = repeat !== 1 ? () => [...prompt, ...generated] : () => generated;
      options.repeatPenalty = {
        punishTokens: punished,
        penalty: repeat,
        presencePenalty: sampling.presencePenalty,
        frequencyPenalty: sampling.frequencyPenalty,
      };
    }
    if (sampling.logitBias && sampling.logitBias.size > 0) {
      const bias = new TokenBias(model.tokenizer);
      for (const [token, value] of sampling.logitBias)
        bias.set(token as Token, value <= -100 ? "never" : { logit: value });
      options.tokenBias = bias;
    }
    return options;
  }

  private topCandidates(probabilities: Map<Token, number>, count: number): TokenCandidate[] {
    const top: TokenCandidate[] = [];
    // The map is sorted from the most to the least likely token.
    for (const [token, probability] of probabilities) {
      if (top.length >= count) break;
      top.push({ token, text: this.pieceOf(token), logprob: safeLog(probability) });
    }
    return top;
  }

  private pieceOf(token: Token): string {
    let piece = this.pieceCache.get(token);
    if (piece === undefined) {
      piece = this.loadedModel().detokenize([token], false);
      if (this.pieceCache.size < 65_536) this.pieceCache.set(token, piece);
    }
    return piece;
  }
}

/**
 * Whether node-llama-cpp's own chain samples exactly what the request asks for. Its top-p runs
 * before temperature, which moves the nucleus unless temperature is 0 or 1 (or top_p is 1);
 * a repetition penalty together with presence or frequency penalties would share one token
 * window. Otherwise TokenSampler samples (from the model's full distribution, more slowly).
 */
function nativeChainIsExact(sampling: SamplingParams): boolean {
  const repeat = sampling.repetitionPenalty ?? 1;
  if (repeat !== 1 && (sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0)) return false;
  return sampling.temperature <= 0 || sampling.temperature === 1 || sampling.topP >= 1;
}

/**
 * A repetition penalty scales raw logits (down when positive, up when negative); the sampler
 * that works on the model's probabilities cannot tell their sign, so it cannot apply one.
 */
function repetitionNeedsNativeSampler(): ServiceError {
  return invalidRequest(
    "repetition_penalty cannot be combined with logprobs, with presence or frequency penalties, or with top_p below 1 at a temperature other than 0 or 1 on this model's engine; run the model on llama-server for that.",
    "repetition_penalty",
    "unsupported_parameter",
  );
}

type SampledToken = Omit<Extract<EngineEvent, { type: "token" }>, "type">;

/**
 * Turns sampled tokens into text without splitting a multi-byte character: byte-fallback tokens
 * are held until they decode cleanly. Decoding with a few earlier tokens as context keeps the
 * tokenizer's leading-space handling right.
 */
class PieceDecoder {
  private pending: Token[] = [];

  constructor(
    private readonly model: LlamaModel,
    private context: Token[],
  ) {}

  push(token: Token): string {
    if (this.model.isEogToken(token)) return "";
    this.pending.push(token);
    const text = this.model.detokenize(this.pending, false, this.context);
    if (text.endsWith("\uFFFD") && this.pending.length < MAX_HELD_TOKENS) return "";
    this.context = [...this.context, ...this.pending].slice(-DETOKENIZE_CONTEXT);
    this.pending = [];
    return text;
  }

  flush(): string {
    if (this.pending.length === 0) return "";
    const text = this.model.detokenize(this.pending, false, this.context);
    this.pending = [];
    return text;
  }
}

/**
 * The pooling an embedding context will use: node-llama-cpp cannot set one, so llama.cpp takes
 * the GGUF's. With none, the vector is the last token's state, which is what `last` asks for.
 */
function embeddingPooling(model: LlamaModel, mode: EmbeddingMode): EnginePooling {
  const arch = model.fileInfo.architectureMetadata as { pooling_type?: number };
  const own = poolingFromId(arch.pooling_type) ?? "none";
  if (own === "rank") throw new Error("this GGUF is a reranker (pooling rank), not an embedding model");
  // Without pooling of its own the vector is the last token's state.
  const effective = own === "none" ? "last" : own;
  const wanted = mode.pooling;
  if (wanted === undefined || wanted === effective) return effective;
  throw new Error(
    `pooling: ${wanted} was configured, but this engine pools as the GGUF file says (${own}); run the model on llama-server to choose the pooling, or leave pooling unset`,
  );
}

function readMetadata(model: LlamaModel, contextSize: number, slots: number): ModelMetadata {
  const tokenizer = model.fileInfo.metadata.tokenizer as { chat_template?: unknown } | undefined;
  const template = typeof tokenizer?.chat_template === "string" ? tokenizer.chat_template : undefined;
  return {
    contextSize,
    trainContextSize: model.trainContextSize,
    chatTemplate: template,
    bosToken: model.tokens.bosString ?? undefined,
    eosToken: model.tokens.eosString ?? undefined,
    bosTokenId: model.tokens.bos ?? undefined,
    addBosToken: model.tokens.shouldPrependBosToken,
    eosTokenId: model.tokens.eos ?? undefined,
    addEosToken: model.tokens.shouldAppendEosToken,
    vocabSize: model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0,
    longestTokenBytes: longestTokenBytes(model.fileInfo.metadata.tokenizer?.ggml?.tokens),
    embeddingSize: model.embeddingVectorSize,
    slots,
    fim: fimTokensOf(model),
  };
}

function safeLog(probability: number): number {
  return probability > 0 ? Math.log(probability) : -9999;
}
