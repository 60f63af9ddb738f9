import type { RequestPriority, SamplingParams } from "../../../../core/generation.js";
import type {
  EmbeddingMode,
  EngineEvent,
  EngineGrammar,
  ModelMetadata,
  PromptTokenScore,
  TokenCandidate,
  TokenGeneration,
} from "../../engine.js";
import type { GpuMode } from "../in-process/llama-instance.js";

/**
 * The messages between the server process and a runner process, over Node's IPC channel (JSON
 * serialization: measured cheaper per message than "advanced" for these small messages). Requests
 * and replies are objects; the stream of one generation is compact arrays, one message per event,
 * sent the moment the event exists (nothing is batched).
 */

/** What the runner loads: the in-process engine's options, minus what only this process knows. */
export interface RunnerLoadOptions {
  modelPath: string;
  contextSize?: number;
  contextSizeCap: number;
  slots: number;
  threads: number;
  gpuLayers: "auto" | "max" | number;
  gpu: GpuMode;
  /** The runner's own log level (its lines go to stderr, which the server logs). */
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Load the model to embed. */
  embedding?: EmbeddingMode;
}

/** A generation as it crosses the channel (a Map does not survive JSON). */
export interface WireGeneration {
  promptTokens: readonly number[];
  maxTokens: number;
  sampling: Omit<SamplingParams, "logitBias"> & { logitBias?: [number, number][] };
  topLogprobs?: number;
  /** Plain data already: GBNF text and trigger words and patterns. */
  grammar?: EngineGrammar;
  promptLogprobs?: number;
  /** Batch work yields decode steps to interactive prompts inside the runner too. */
  priority?: RequestPriority;
}

export type ParentMessage =
  | { op: "load"; options: RunnerLoadOptions }
  | { op: "call"; id: number; method: "tokenize"; text: string; special: boolean; continuation?: boolean }
  | { op: "call"; id: number; method: "detokenize"; tokens: readonly number[] }
  /** Replies one vector (a number array) per input, in order. */
  | { op: "call"; id: number; method: "embed"; inputs: readonly (readonly number[])[] }
  /** Replies { running }: generations in progress in the runner. */
  | { op: "call"; id: number; method: "status" }
  /** Runs on `slot`, after whatever that slot is still finishing. */
  | { op: "generate"; id: number; slot: number; req: WireGeneration }
  | { op: "abort"; id: number };

export type ChildMessage =
  /** The channel is listening. */
  | { op: "hello"; pid: number }
  | { op: "loaded"; meta: ModelMetadata }
  | { op: "load-failed"; message: string }
  | { op: "result"; id: number; value: unknown }
  | { op: "error"; id: number; message: string }
  | StreamMessage;

/** Kinds of stream messages: [id, kind, ...fields]. */
export const S_PROMPT = 0;
export const S_TOKEN = 1;
export const S_END = 2;
/** The generation stopped without an end event (it was aborted); the slot is free in the runner. */
export const S_DONE = 3;
export const S_ERROR = 4;
/** The prompt's tokens scored (promptLogprobs), after S_PROMPT. */
export const S_PROMPT_LOGPROBS = 5;

export type StreamMessage =
  | [id: number, kind: typeof S_PROMPT, promptTokens: number, cachedTokens: number]
  /** top: flat [token, text, logprob, token, text, logprob, ...]. */
  | [id: number, kind: typeof S_TOKEN, token: number, text: string]
  | [
      id: number,
      kind: typeof S_TOKEN,
      token: number,
      text: string,
      piece: string | null,
      logprob: number | null,
      top: (number | string)[] | null,
    ]
  /** Per prompt token: [token, piece, logprob, top as in S_TOKEN] (null logprob and top for the first). */
  | [
      id: number,
      kind: typeof S_PROMPT_LOGPROBS,
      scores: [token: number, piece: string, logprob: number | null, top: (number | string)[] | null][],
    ]
  /** slotTokens: how many tokens the slot's KV cache holds now. */
  | [id: number, kind: typeof S_END, reason: "stop" | "length", slotTokens: number]
  | [id: number, kind: typeof S_DONE, slotTokens: number]
  /** code: set when the request itself was refused (a 400 `invalid_grammar`, say), not the runner failing. */
  /** code (and the parameter it names) when the request was refused: the server answers 400. */
  | [id: number, kind: typeof S_ERROR, message: string, code?: string, param?: string | null];

export function toWireGeneration(req: TokenGeneration): WireGeneration {
  const { logitBias, ...sampling } = req.sampling;
  const wire: WireGeneration = {
    promptTokens: req.promptTokens,
    maxTokens: req.maxTokens,
    sampling: logitBias && logitBias.size > 0 ? { ...sampling, logitBias: [...logitBias] } : sampling,
  };
  if (req.topLogprobs !== undefined) wire.topLogprobs = req.topLogprobs;
  if (req.grammar) wire.grammar = req.grammar;
  if (req.promptLogprobs !== undefined) wire.promptLogprobs = req.promptLogprobs;
  if (req.priority) wire.priority = req.priority;
  return wire;
}

export function fromWireGeneration(wire: WireGeneration): TokenGeneration {
  const { logitBias, ...sampling } = wire.sampling;
  const req: TokenGeneration = {
    promptTokens: wire.promptTokens,
    maxTokens: wire.maxTokens,
    sampling: logitBias ? { ...sampling, logitBias: new Map(logitBias) } : sampling,
  };
  if (wire.topLogprobs !== undefined) req.topLogprobs = wire.topLogprobs;
  if (wire.grammar) req.grammar = wire.grammar;
  if (wire.promptLogprobs !== undefined) req.promptLogprobs = wire.promptLogprobs;
  if (wire.priority) req.priority = wire.priority;
  return req;
}

/** A token event as a stream message (runner side). */
export function encodeToken(id: number, event: Extract<EngineEvent, { type: "token" }>): StreamMessage {
  if (event.piece === undefined && event.logprob === undefined && event.top === undefined)
    return [id, S_TOKEN, event.token, event.text];
  return [
    id,
    S_TOKEN,
    event.token,
    event.text,
    event.piece ?? null,
    event.logprob ?? null,
    flatTop(event.top),
  ];
}

function flatTop(candidates: readonly TokenCandidate[] | undefined): (number | string)[] | null {
  if (!candidates) return null;
  const top: (number | string)[] = [];
  for (const candidate of candidates) top.push(candidate.token, candidate.text, candidate.logprob);
  return top;
}

function unflatTop(top: (number | string)[]): TokenCandidate[] {
  const candidates: TokenCandidate[] = [];
  for (let i = 0; i + 2 < top.length; i += 3)
    candidates.push({ token: top[i] as number, text: top[i + 1] as string, logprob: top[i + 2] as number });
  return candidates;
}

/** Scored prompt tokens as a stream message (runner side). */
export function encodePromptLogprobs(id: number, tokens: readonly PromptTokenScore[]): StreamMessage {
  return [
    id,
    S_PROMPT_LOGPROBS,
    tokens.map((score) => [score.token, score.piece, score.logprob ?? null, flatTop(score.top)]),
  ];
}

/** A scored-prompt stream message as engine data (server side). */
export function decodePromptLogprobs(
  message: Extract<StreamMessage, { 1: typeof S_PROMPT_LOGPROBS }>,
): PromptTokenScore[] {
  return message[2].map(([token, piece, logprob, top]) => {
    const score: PromptTokenScore = { token, piece };
    if (logprob !== null) score.logprob = logprob;
    if (top !== null) score.top = unflatTop(top);
    return score;
  });
}

/** A token stream message as an engine event (server side). */
export function decodeToken(
  message: Extract<StreamMessage, { 1: typeof S_TOKEN }>,
): Extract<EngineEvent, { type: "token" }> {
  const event: Extract<EngineEvent, { type: "token" }> = {
    type: "token",
    token: message[2],
    text: message[3],
  };
  if (message.length === 4) return event;
  const piece = message[4];
  const logprob = message[5];
  const top = message[6];
  if (piece !== null) event.piece = piece;
  if (logprob !== null) event.logprob = logprob;
  if (top !== null) event.top = unflatTop(top);
  return event;
}
