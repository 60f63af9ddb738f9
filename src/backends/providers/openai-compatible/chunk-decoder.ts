import type { FinishReason, GenerationPart, TokenLogprob } from "../../../core/generation.js";
import type { StreamDecoder } from "../provider-adapter.js";
import { type EventSourceMessage, parseEventJson } from "../sse-events.js";
import { upstreamProtocolError, upstreamStreamError } from "../upstream-errors.js";

/** The fields of a chat.completion.chunk (or a legacy text_completion chunk) this server reads. */
interface WireChunk {
  choices?: WireChoice[];
  usage?: WireUsage | null;
  error?: { message?: string } | string;
}

interface WireChoice {
  index?: number;
  text?: string;
  delta?: {
    content?: string | null;
    reasoning_content?: string | null;
    reasoning?: string | null;
    refusal?: string | null;
    tool_calls?: WireToolCallDelta[] | null;
  };
  logprobs?: WireLogprobs | null;
  finish_reason?: string | null;
}

interface WireToolCallDelta {
  index?: number;
  id?: string | null;
  function?: { name?: string | null; arguments?: string | null };
}

interface WireLogprobs {
  content?: { token: string; logprob: number; bytes?: number[] | null; top_logprobs?: WireTop[] }[] | null;
  /** Legacy completions. */
  tokens?: string[];
  token_logprobs?: (number | null)[];
  top_logprobs?: (Record<string, number> | null)[] | null;
}

interface WireTop {
  token: string;
  logprob: number;
  bytes?: number[] | null;
}

interface WireUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
  completion_tokens_details?: { reasoning_tokens?: number } | null;
}

const FINISH_REASONS: Readonly<Record<string, FinishReason>> = {
  stop: "stop",
  length: "length",
  tool_calls: "tool_calls",
  function_call: "tool_calls",
  content_filter: "content_filter",
};

/**
 * OpenAI-style chunks → parts. Tool-call pieces keep their index; an id or name repeated on later
 * pieces (some servers do) is dropped, so a client sees each call introduced once.
 */
export class OpenAiChunkDecoder implements StreamDecoder {
  complete = false;
  private readonly announcedCalls = new Set<string>();
  private readonly finished = new Set<number>();

  constructor(private readonly choices: number) {}

  read(event: EventSourceMessage): GenerationPart[] {
    if (event.data === "[DONE]") {
      this.complete = true;
      return [];
    }
    const chunk = parseEventJson(event.data) as WireChunk | undefined;
    if (!chunk || typeof chunk !== "object") throw upstreamProtocolError("an event that is not JSON");
    if (chunk.error) {
      throw upstreamStreamError(typeof chunk.error === "string" ? chunk.error : chunk.error.message);
    }
    const parts: GenerationPart[] = [];
    for (const choice of chunk.choices ?? []) this.readChoice(choice, parts);
    if (chunk.usage) parts.push(usagePart(chunk.usage));
    return parts;
  }

  /** Servers that end without [DONE] are whole once every choice finished. */
  finish(): GenerationPart[] {
    if (!this.complete && this.finished.size < this.choices) {
      throw upstreamProtocolError("an answer that ended before it was complete");
    }
    return [];
  }

  private readChoice(choice: WireChoice, parts: GenerationPart[]): void {
    const index = choice.index ?? 0;
    const logprobs = choice.logprobs ? toLogprobs(choice.logprobs) : undefined;
    if (typeof choice.text === "string" && (choice.text || logprobs?.length)) {
      parts.push({ type: "text", choice: index, text: choice.text, ...(logprobs && { logprobs }) });
    }
    const delta = choice.delta;
    if (delta) {
      const reasoning = delta.reasoning_content ?? delta.reasoning;
      if (reasoning) parts.push({ type: "reasoning", choice: index, text: reasoning });
      if (delta.content || (delta.content === "" && logprobs?.length)) {
        parts.push({ type: "text", choice: index, text: delta.content, ...(logprobs && { logprobs }) });
      }
      if (delta.refusal) parts.push({ type: "refusal", choice: index, text: delta.refusal });
      for (const call of delta.tool_calls ?? []) parts.push(this.toolCallPart(index, call));
    }
    if (choice.finish_reason) {
      this.finished.add(index);
      parts.push({ type: "finish", choice: index, reason: FINISH_REASONS[choice.finish_reason] ?? "stop" });
    }
  }

  private toolCallPart(choice: number, call: WireToolCallDelta): GenerationPart {
    const index = call.index ?? 0;
    const key = `${choice}:${index}`;
    const argumentsDelta = call.function?.arguments ?? "";
    if (this.announcedCalls.has(key)) return { type: "tool-call", choice, index, argumentsDelta };
    this.announcedCalls.add(key);
    return {
      type: "tool-call",
      choice,
      index,
      id: call.id ?? `call_${choice}_${index}`,
      name: call.function?.name ?? "",
      argumentsDelta,
    };
  }
}

function usagePart(usage: WireUsage): GenerationPart {
  const reasoning = usage.completion_tokens_details?.reasoning_tokens;
  return {
    type: "usage",
    promptTokens: usage.prompt_tokens ?? 0,
    completionTokens: usage.completion_tokens ?? 0,
    cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    ...(reasoning !== undefined && { reasoningTokens: reasoning }),
  };
}

const utf8 = (text: string) => [...Buffer.from(text, "utf8")];

function toLogprobs(wire: WireLogprobs): TokenLogprob[] | undefined {
  if (wire.content) {
    return wire.content.map((entry) => ({
      token: entry.token,
      logprob: entry.logprob,
      bytes: entry.bytes ?? utf8(entry.token),
      top: (entry.top_logprobs ?? []).map((t) => ({
        token: t.token,
        logprob: t.logprob,
        bytes: t.bytes ?? utf8(t.token),
      })),
    }));
  }
  if (!wire.tokens) return undefined;
  return wire.tokens.map((token, i) => ({
    token,
    logprob: wire.token_logprobs?.[i] ?? 0,
    bytes: utf8(token),
    top: Object.entries(wire.top_logprobs?.[i] ?? {}).map(([t, logprob]) => ({
      token: t,
      logprob,
      bytes: utf8(t),
    })),
  }));
}
