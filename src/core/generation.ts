/**
 * The internal language every backend speaks. The OpenAI wire format is translated into these
 * types at the edge (api/<resource>/schema.ts) and back out of them (api/<resource>/encode.ts),
 * so chat completions, completions, responses and assistant runs share one generation core.
 */

export type Role = "system" | "developer" | "user" | "assistant" | "tool";

export interface ChatMessage {
  role: Role;
  /** Plain text; content parts are flattened at the edge once their types are checked. */
  content: string;
  name?: string;
  toolCallId?: string;
}

export interface SamplingParams {
  temperature: number;
  topP: number;
  seed?: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** Token id → additive bias (-100..100), ids already validated against the vocabulary. */
  logitBias?: ReadonlyMap<number, number>;
}

export type GenerationInput = { kind: "chat"; messages: ChatMessage[] } | { kind: "text"; text: string };

export interface GenerationRequest {
  /** The public model id the caller asked for (after alias resolution). */
  model: string;
  input: GenerationInput;
  sampling: SamplingParams;
  /** Upper bound on generated tokens per choice; undefined = until the context is full. */
  maxTokens?: number;
  stop: string[];
  /** Number of independent choices. */
  n: number;
  /** Number of top alternatives per token when log probabilities are wanted; undefined = none. */
  logprobs?: { top: number };
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top: { token: string; logprob: number; bytes: number[] }[];
}

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";

export type GenerationPart =
  | { type: "text"; choice: number; text: string; logprobs?: TokenLogprob[] }
  | { type: "finish"; choice: number; reason: FinishReason }
  | { type: "usage"; promptTokens: number; completionTokens: number; cachedTokens: number };

export interface BackendCapabilities {
  chat: boolean;
  completions: boolean;
  embeddings: boolean;
  tools: boolean;
  vision: boolean;
  logprobs: boolean;
}

/**
 * A request a backend has checked and measured (for a local model: rendered and tokenized), so
 * its cost is known before any generation starts: limits reserve tokens from these numbers.
 */
export interface PreparedGeneration {
  readonly request: GenerationRequest;
  readonly promptTokens: number;
  /** The most tokens any one choice may generate (max_tokens, or what the context leaves). */
  readonly maxTokensPerChoice: number;
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
}

export interface ModelBackend {
  readonly capabilities: BackendCapabilities;
  /** Validates and measures a request (400 context_length_exceeded and the like are thrown here). */
  prepare(req: GenerationRequest): Promise<PreparedGeneration>;
  /**
   * Yields parts for every choice interleaved. Admission failures (overload) are thrown before
   * the first part so the edge can still answer with a JSON error.
   */
  generate(prepared: PreparedGeneration, signal: AbortSignal): AsyncIterable<GenerationPart>;
  /** Resolves once the backend can serve (model loaded). */
  ready(): Promise<void>;
  isReady(): boolean;
  stats(): BackendStats;
  close(): Promise<void>;
}

export interface BackendStats {
  slots: number;
  busySlots: number;
  queued: number;
}
