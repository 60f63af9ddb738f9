import { invalidRequest, type ServiceError } from "../../core/errors.js";
import type { RequestPriority, SamplingParams } from "../../core/generation.js";

/**
 * A token-level engine under the local backend. Chat templates, stop strings, n>1, tools and the
 * wire format are written once above this interface; an engine only turns prompt tokens into
 * sampled tokens. In-process node-llama-cpp implements it today; supervised child processes
 * (a node-llama-cpp runner, llama.cpp's llama-server) implement the same contract.
 */
export interface LocalEngine {
  /** Loads the model; idempotent. */
  load(): Promise<void>;
  isLoaded(): boolean;
  metadata(): ModelMetadata;
  /**
   * `special`: parse special-token text (template text only). `continuation`: the text continues
   * a prompt, so no leading-space prefix is added (SPM tokenizers add one at the start of text).
   */
  tokenize(text: string, options: { special: boolean; continuation?: boolean }): Promise<number[]>;
  detokenize(tokens: readonly number[]): Promise<string>;
  /**
   * Streams one sequence's tokens. Waits for a free slot first (throws a 429 ServiceError at once when
   * the bounded queue is full). Ends on an end-of-generation token, maxTokens or abort.
   */
  generate(req: TokenGeneration, signal: AbortSignal): AsyncIterable<EngineEvent>;
  /**
   * Embedding models (loaded in embedding mode): one pooled, unnormalised vector per input, in
   * order. The inputs are taken as they are (the backend adds start/end tokens) and each fits the
   * context. Waits for a slot like generate(); throws for a model not loaded to embed.
   */
  embed(
    inputs: readonly (readonly number[])[],
    signal: AbortSignal,
    priority?: RequestPriority,
  ): Promise<Float32Array[]>;
  /** Whether generate() takes a grammar; an engine without refuses one rather than ignore it. */
  readonly grammars: boolean;
  stats(): EngineStats;
  close(): Promise<void>;
}

export interface ModelMetadata {
  /** Tokens one sequence can hold: prompt + completion must fit. */
  contextSize: number;
  trainContextSize: number;
  chatTemplate: string | undefined;
  bosToken: string | undefined;
  eosToken: string | undefined;
  /** Whether the tokenizer wants a BOS token in front of a prompt. */
  addBosToken: boolean;
  bosTokenId: number | undefined;
  vocabSize: number;
  /**
   * UTF-8 bytes of the vocabulary's longest token; 0 = unknown. Lets a prompt that cannot fit be
   * refused from its length alone, before tokenizing it.
   */
  longestTokenBytes: number;
  embeddingSize: number;
  slots: number;
  eosTokenId?: number;
  /**
   * The model's fill-in-the-middle tokens (as llama.cpp finds them: the GGUF's
   * tokenizer.ggml.fim_*_token_id keys, else well-known token texts); undefined = it has none.
   */
  fim?: FimTokens;
  /** Whether the tokenizer wants an end token after an input (embedding inputs get one then). */
  addEosToken?: boolean;
  /** Embedding mode: how the engine pools token states into one vector; undefined = not an embedding engine. */
  pooling?: EnginePooling;
}

/** Token ids that frame a fill-in-the-middle prompt. */
export interface FimTokens {
  prefix: number;
  suffix: number;
  middle: number;
}

/** Pooling as llama.cpp names it; `none` yields the last token's state. */
export type EnginePooling = "none" | "mean" | "cls" | "last" | "rank";

/** llama.cpp's llama_pooling_type ids (the GGUF's `<arch>.pooling_type`). */
export function poolingFromId(id: unknown): EnginePooling | undefined {
  const names: Record<number, EnginePooling> = { 0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank" };
  return typeof id === "number" ? names[id] : undefined;
}

/** Loading a model to embed: the pooling the operator asked for (default: the GGUF's). */
export interface EmbeddingMode {
  pooling?: "mean" | "cls" | "last";
}

/** An engine asked to embed with a model it did not load in embedding mode. */
export function notAnEmbeddingEngine(): ServiceError {
  return invalidRequest("This model was not loaded to create embeddings.", "model");
}

export interface TokenGeneration {
  promptTokens: readonly number[];
  maxTokens: number;
  sampling: SamplingParams;
  /** Alternatives per token to report with their log probabilities; undefined = none at all. */
  topLogprobs?: number;
  /** A grammar every sampled token must keep to (structured outputs, tool calls). */
  grammar?: EngineGrammar;
  /**
   * Score the prompt's own tokens too, with this many alternatives each (a `prompt-logprobs` event
   * after `prompt`); undefined = no. The prompt is then evaluated from its first token: tokens in a
   * slot's KV cache keep no logits, so none of it is reused (cachedTokens 0).
   */
  promptLogprobs?: number;
  /** Absent = interactive; batch generations wait behind interactive ones for slots (SlotScheduler). */
  priority?: RequestPriority;
}

/** A grammar in llama.cpp's GBNF, applied from the first token or, when lazy, from a trigger on. */
export interface EngineGrammar {
  gbnf: string;
  /**
   * Lazy: free text until the output contains one of `words` or matches one of `patterns`
   * (regular expressions), then constrained from there (a tool call's opening tag, say).
   */
  lazy?: { words: readonly string[]; patterns: readonly string[] };
}

/** What an engine without grammar support answers to a grammar: a refusal, never a silent drop. */
export function grammarUnsupported(engine: string): ServiceError {
  return invalidRequest(
    `Grammar-constrained generation is not available on the ${engine} engine; run the model on llama-server.`,
    null,
    "unsupported_grammar",
  );
}

export interface TokenCandidate {
  token: number;
  text: string;
  logprob: number;
}

/** A prompt token scored; the first prompt token has no logprob and no alternatives. */
export interface PromptTokenScore {
  token: number;
  piece: string;
  logprob?: number;
  top?: TokenCandidate[];
}

export type EngineEvent =
  /** First event: the prompt was admitted; cachedTokens of it were reused from a slot's KV cache. */
  | { type: "prompt"; promptTokens: number; cachedTokens: number }
  /** With promptLogprobs, next after `prompt`: every prompt token, in order. */
  | { type: "prompt-logprobs"; tokens: PromptTokenScore[] }
  /**
   * `text` is the UTF-8-complete text this token adds (may be "" while a multi-byte character is
   * still incomplete, and may then carry more than one token's text). `piece` is this token's own
   * text, given when log probabilities were asked for.
   */
  | { type: "token"; token: number; text: string; piece?: string; logprob?: number; top?: TokenCandidate[] }
  | { type: "end"; reason: "stop" | "length" };

export interface EngineStats {
  slots: number;
  busySlots: number;
  queued: number;
}
