/**
 * The internal language every backend speaks. The OpenAI wire format is translated into these
 * types at the edge (api/<resource>/schema.ts) and back out of them (api/<resource>/encode.ts),
 * so chat completions, completions, responses and assistant runs share one generation core.
 */

import type { Cancellation } from "./cancellation.js";
import type { ChatMessage, OutputConstraint } from "./messages.js";

export type { ChatMessage, ContentPart, Role, ToolCall } from "./messages.js";

export interface SamplingParams {
  temperature: number;
  topP: number;
  seed?: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** Token id → additive bias (-100..100), ids already validated against the vocabulary. */
  logitBias?: ReadonlyMap<number, number>;
  /**
   * Truncations a caller (or an operator's per-model defaults) may ask for to trade the exact
   * distribution for speed; not OpenAI fields (vLLM accepts the same names). undefined = the
   * model's default, which is none: top_k 0 (every token), min_p 0, repetition_penalty 1.
   */
  topK?: number;
  minP?: number;
  /** llama.cpp's repeat penalty over the prompt and the text so far (>1 discourages repeats). */
  repetitionPenalty?: number;
}

/**
 * A raw prompt (legacy completions): text, tokenized as plain text, or token ids taken as they are.
 * A text with a `suffix` asks the model to fill in what goes between the two (fill-in-the-middle),
 * for models whose vocabulary has the tokens for it.
 */
export type PromptInput = { text: string; suffix?: string } | { tokens: number[] };

/**
 * A conversation (rendered by the model's template), or raw prompts: each prompt gets `n`
 * choices, numbered prompt index × n + i.
 */
export type GenerationInput =
  | { kind: "chat"; messages: ChatMessage[] }
  | { kind: "prompts"; prompts: PromptInput[] };

export interface GenerationRequest {
  /** The public model id the caller asked for (after alias resolution). */
  model: string;
  input: GenerationInput;
  sampling: SamplingParams;
  /** Upper bound on generated tokens per choice; undefined = until the context is full. */
  maxTokens?: number;
  stop: string[];
  /** Number of independent choices (per prompt, for raw prompts). */
  n: number;
  /**
   * Number of top alternatives per token when log probabilities are wanted; undefined = none.
   * `prompt`: the prompt's own tokens are scored too (legacy completions' echo with logprobs;
   * raw prompts only), reported in a `prompt-logprobs` part before each choice's text.
   */
  logprobs?: { top: number; prompt?: boolean };
  /** Tools and output format the answer must keep to; absent = free text. */
  constraint?: OutputConstraint;
  /** How hard a reasoning model should think; absent = the model's default. */
  reasoningEffort?: ReasoningEffort;
  /** Who waits on the answer; absent = interactive. Batch work yields capacity to interactive requests. */
  priority?: RequestPriority;
}

/**
 * interactive: a caller is waiting (HTTP requests). batch: queued work (batch lines) that runs on
 * capacity interactive requests leave: it waits behind them for slots and deployment caps.
 */
export type RequestPriority = "interactive" | "batch";

export type ReasoningEffort = "none" | "minimal" | "low" | "medium" | "high";

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top: { token: string; logprob: number; bytes: number[] }[];
}

/**
 * A prompt token as the model scored it: the first token of a prompt has nothing before it, so no
 * log probability and no alternatives (null, as OpenAI reports it).
 */
export interface PromptTokenLogprob {
  token: string;
  logprob: number | null;
  bytes: number[];
  top: TokenLogprob["top"] | null;
}

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";

/**
 * What a backend streams. Parts of different choices interleave; within a choice they come in
 * order. Non-streaming responses are the same parts collected.
 */
export type GenerationPart =
  | { type: "text"; choice: number; text: string; logprobs?: TokenLogprob[] }
  /** The prompt's tokens scored (logprobs.prompt), once per choice, before any of its text. */
  | { type: "prompt-logprobs"; choice: number; logprobs: PromptTokenLogprob[] }
  /** Reasoning ("thinking") text, kept apart from the answer. */
  | { type: "reasoning"; choice: number; text: string }
  /** The model declined; the text says why. */
  | { type: "refusal"; choice: number; text: string }
  /**
   * A piece of a tool call: the first piece of call `index` carries its id and name, later ones
   * only more argument text, so a client can accumulate them as the OpenAI SDKs do.
   */
  | { type: "tool-call"; choice: number; index: number; id?: string; name?: string; argumentsDelta: string }
  | { type: "finish"; choice: number; reason: FinishReason }
  | ({ type: "usage" } & UsageCounts);

export interface BackendCapabilities {
  chat: boolean;
  completions: boolean;
  embeddings: boolean;
  /** Tool definitions and assistant tool calls. */
  tools: boolean;
  /** json_object and json_schema response formats. */
  structuredOutputs: boolean;
  /** Image parts in messages. */
  vision: boolean;
  /** Audio parts in messages. */
  audioInput: boolean;
  /** File parts in messages. */
  fileInput: boolean;
  logprobs: boolean;
}

/**
 * What a request will cost at most, known before generation starts: limits reserve from it. A
 * local model counts its prompt exactly (it tokenized it); an upstream provider estimates.
 */
export interface CostEstimate {
  promptTokens: number;
  /** The most tokens any one choice may generate (max_tokens, or what the context leaves). */
  maxTokensPerChoice: number;
  /** Sequences generated: n, or n per prompt. */
  choices: number;
  /** false: promptTokens is an estimate, settled from the provider's reported usage. */
  exact: boolean;
}

/** A request a backend has checked and measured, ready to generate. */
export interface PreparedGeneration {
  readonly request: GenerationRequest;
  readonly estimate: CostEstimate;
  /**
   * Usage so far, kept current by the backend while it generates: what a request cut short
   * (client gone) still consumed, for limits and accounting.
   */
  readonly progress: UsageCounts;
}

export interface UsageCounts {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Of completionTokens, those spent reasoning. */
  reasoningTokens?: number;
}

/**
 * What to embed: texts (tokenized by the model, its start/end tokens added as its tokenizer wants)
 * or token ids (taken as they are, the same start/end tokens added where missing). One vector per
 * item, in order.
 */
export type EmbeddingInput = { kind: "text"; texts: string[] } | { kind: "tokens"; tokens: number[][] };

export interface EmbeddingRequest {
  /** The public model id the caller asked for (after alias resolution). */
  model: string;
  input: EmbeddingInput;
  /**
   * Keep the first this-many dimensions (renormalised when the model normalises), where the model
   * allows it; undefined = the model's full size.
   */
  dimensions?: number;
  /**
   * The wire name of each item, for errors that point at one ("input[3]"); the default names
   * them `input[i]` (`input` for a single item).
   */
  paramOf?: (index: number) => string;
  /** Absent = interactive; see GenerationRequest.priority. */
  priority?: RequestPriority;
}

/** An embedding request a backend has checked and measured (limits reserve from the estimate). */
export interface PreparedEmbedding {
  readonly request: EmbeddingRequest;
  /** promptTokens: the input tokens; no completion (maxTokensPerChoice 0). */
  readonly estimate: CostEstimate;
}

export interface EmbeddingResult {
  /** One per input item, in input order. */
  vectors: Float32Array[];
  promptTokens: number;
}

/** States of a model's engine (for an engine process, its supervisor's). */
export const ENGINE_STATES = ["stopped", "starting", "ready", "restarting", "failed", "closed"] as const;
export type EngineState = (typeof ENGINE_STATES)[number];

/** The engine running a local model, as operators see it (/ready, /metrics). */
export interface EngineReport {
  /** "in-process", "runner", "llama-server". */
  engine: string;
  state: EngineState;
  pid?: number;
  restarts: number;
  /** Why this engine runs the model (set where the engine was chosen). */
  choice?: EngineChoice;
}

/** Why a local model runs on the engine it does, for operators. */
export interface EngineChoice {
  /** What the model's config asked for (`engine`, default auto). */
  requested: "auto" | "llama-server" | "runner" | "in-process";
  /**
   * configured: the config named the engine; llama_server_found: auto found a llama-server
   * binary; no_llama_server: auto found none and took the runner.
   */
  reason: "configured" | "llama_server_found" | "no_llama_server";
  /** The reason in a sentence, with what to do about it where something can be done. */
  detail: string;
  /** The llama-server binary that runs the model. */
  binary?: LlamaServerIdentity;
}

/** A llama-server binary: where it came from and what it was built from, as far as is known. */
export interface LlamaServerIdentity {
  origin: "config" | "PATH" | "build cache";
  /** Absolute path: operators only (the admin API); /ready leaves it out. */
  path: string;
  /** The llama.cpp commit it was built from. */
  revision?: string;
  /** llama.cpp's build number (`--version`) or node-llama-cpp's release tag (builds made here). */
  release?: string;
  /** The cmake flags of a `switchboard engine build`. */
  flags?: Record<string, string>;
  cuda?: boolean;
  /** ISO time of a `switchboard engine build`. */
  builtAt?: string;
  /** The compiler, and for `--version` the target it was built for. */
  compiler?: string;
}

/** What the router, /ready and /metrics read to decide whether to send work to a backend. */
export interface BackendHealth {
  /** Loaded and able to take work now (an engine process restarting after a crash is not). */
  serving: boolean;
  /** Loaded (a model that has not loaded yet, or failed to, is not). */
  loaded: boolean;
  /** Local models: their engine. */
  engine?: EngineReport;
  /** Routed models: each deployment behind them. */
  deployments?: DeploymentReport[];
}

/** One deployment of a routed model, as operators see it. Never holds a key or a URL's credentials. */
export interface DeploymentReport {
  name: string;
  provider: string;
  /** closed: taking traffic; open: failing, skipped; half_open: one probe allowed. */
  circuit: "closed" | "open" | "half_open";
  consecutiveFailures: number;
  inFlight: number;
  /** Attempts sent to it, by how they ended. */
  attempts: { succeeded: number; failed: number };
}

export interface GenerateOptions {
  /**
   * The caller takes the answer only once it is whole (a response body, a batch line): nothing
   * reaches its client before the end, so a backend that retries (the router) may retry a failure
   * anywhere before the end, not only before the first part.
   */
  whole?: boolean;
  /**
   * Called when an attempt's first part arrives, where parts are handed on only at the end (taken
   * whole): the time to first token is measured there, not when the gathered parts come out.
   */
  firstPart?: () => void;
}

export interface ModelBackend {
  readonly capabilities: BackendCapabilities;
  /**
   * Validates and measures a request (400 context_length_exceeded and the like are thrown here).
   * A plain value where nothing had to be awaited (an upstream's request is built at once): the
   * request path then makes no promise for it.
   */
  prepare(req: GenerationRequest): PreparedGeneration | Promise<PreparedGeneration>;
  /**
   * Yields parts for every choice interleaved. Admission failures (overload) are thrown before
   * the first part so the edge can still answer with a JSON error. `cancel` stops the work: a
   * backend that must hear of it (an upstream exchange to cut) takes a hook, and one that needs an
   * AbortSignal (a local engine) asks it for one.
   */
  generate(
    prepared: PreparedGeneration,
    cancel: Cancellation,
    options?: GenerateOptions,
  ): AsyncIterable<GenerationPart>;
  /**
   * Embeddings, for backends whose capabilities say so: prepareEmbedding() validates and counts
   * the input (400s naming the item are thrown there), embed() computes every vector.
   */
  prepareEmbedding?(req: EmbeddingRequest): Promise<PreparedEmbedding>;
  embed?(prepared: PreparedEmbedding, cancel: Cancellation): Promise<EmbeddingResult>;
  /**
   * Embedding models: the most tokens one input may hold, as the model's tokenizer counts plain
   * text (the start and end tokens it adds are already taken off); Infinity where no bound is
   * known (an upstream deployment without max_input_tokens); undefined while it cannot be known
   * yet (a local model not loaded). Absent: Infinity.
   */
  embeddingInputLimit?(): number | undefined;
  /**
   * The model's own tokenizer (local models). `special`: parse special-token text (as a template
   * would); otherwise the text is plain data.
   */
  tokenize?(text: string, options: { special: boolean }): Promise<number[]>;
  detokenize?(tokens: readonly number[]): Promise<string>;
  /** Resolves once the backend can serve (model loaded). */
  ready(): Promise<void>;
  isReady(): boolean;
  health(): BackendHealth;
  stats(): BackendStats;
  close(): Promise<void>;
}

export interface BackendStats {
  slots: number;
  busySlots: number;
  queued: number;
}
