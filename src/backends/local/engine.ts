import type { SamplingParams } from "../../core/generation.js";

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
}

export interface TokenGeneration {
  promptTokens: readonly number[];
  maxTokens: number;
  sampling: SamplingParams;
  /** Alternatives per token to report with their log probabilities; undefined = none at all. */
  topLogprobs?: number;
}

export interface TokenCandidate {
  token: number;
  text: string;
  logprob: number;
}

export type EngineEvent =
  /** First event: the prompt was admitted; cachedTokens of it were reused from a slot's KV cache. */
  | { type: "prompt"; promptTokens: number; cachedTokens: number }
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
