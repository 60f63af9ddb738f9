import type { FinishReason, GenerationPart } from "../../../core/generation.js";
import { randomId } from "../../../core/ids.js";
import type { StreamDecoder } from "../provider-adapter.js";
import { type EventSourceMessage, parseEventJson } from "../sse-events.js";
import { upstreamProtocolError, upstreamStreamError } from "../upstream-errors.js";
import { idWithThoughtSignature } from "./thought-signature.js";

/** The fields of a GenerateContentResponse (one streamed chunk) this server reads. */
interface GeminiChunk {
  candidates?: GeminiCandidate[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsage;
  error?: { message?: string };
}

interface GeminiCandidate {
  index?: number;
  content?: { parts?: GeminiPart[] };
  finishReason?: string;
}

interface GeminiPart {
  text?: string;
  thought?: boolean;
  functionCall?: { name?: string; args?: unknown };
  /** Opaque; wanted back on this same part in the next turn (see thought-signature.ts). */
  thoughtSignature?: string;
}

interface GeminiUsage {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  cachedContentTokenCount?: number;
  thoughtsTokenCount?: number;
}

const FILTERED = new Set(["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"]);

function finishReasonOf(reason: string, calledTools: boolean): FinishReason {
  if (reason === "MAX_TOKENS") return "length";
  if (FILTERED.has(reason)) return "content_filter";
  // Gemini says STOP after function calls too.
  return calledTools ? "tool_calls" : "stop";
}

/**
 * streamGenerateContent chunks → parts. Text parts marked `thought` are reasoning; a function
 * call arrives whole, so it becomes one tool-call part with an id of ours (carrying the call's
 * thought signature, when it has one) and all its arguments.
 * Usage counts are cumulative (the last wins) and are reported once the stream ends. Gemini's
 * stream has no end marker: it is whole when every candidate has a finish reason.
 */
export class GeminiChunkDecoder implements StreamDecoder {
  readonly complete = false;
  /** Choice → tool calls it made so far. */
  private readonly calls = new Map<number, number>();
  private readonly finished = new Set<number>();
  private usage: GeminiUsage = {};

  constructor(
    private readonly choices: number,
    /** false: the caller asked for one call at most (parallel_tool_calls false); later ones are dropped. */
    private readonly parallelCalls: boolean,
  ) {}

  read(event: EventSourceMessage): GenerationPart[] {
    const chunk = parseEventJson(event.data) as GeminiChunk | undefined;
    if (!chunk || typeof chunk !== "object") throw upstreamProtocolError("an event that is not JSON");
    if (chunk.error) throw upstreamStreamError(chunk.error.message);
    if (chunk.usageMetadata) this.usage = chunk.usageMetadata;
    const parts: GenerationPart[] = [];
    if (chunk.promptFeedback?.blockReason && !chunk.candidates?.length) {
      // The prompt itself was blocked: no candidate will come.
      for (let choice = 0; choice < this.choices; choice++) this.endChoice(choice, "content_filter", parts);
      return parts;
    }
    for (const [position, candidate] of (chunk.candidates ?? []).entries()) {
      const choice = candidate.index ?? position;
      for (const part of candidate.content?.parts ?? []) this.readPart(choice, part, parts);
      if (candidate.finishReason) {
        this.endChoice(
          choice,
          finishReasonOf(candidate.finishReason, (this.calls.get(choice) ?? 0) > 0),
          parts,
        );
      }
    }
    return parts;
  }

  finish(): GenerationPart[] {
    if (this.finished.size < this.choices) {
      throw upstreamProtocolError("an answer that ended before it was complete");
    }
    const u = this.usage;
    const thoughts = u.thoughtsTokenCount ?? 0;
    return [
      {
        type: "usage",
        promptTokens: u.promptTokenCount ?? 0,
        completionTokens: (u.candidatesTokenCount ?? 0) + thoughts,
        cachedTokens: u.cachedContentTokenCount ?? 0,
        ...(u.thoughtsTokenCount !== undefined && { reasoningTokens: thoughts }),
      },
    ];
  }

  private readPart(choice: number, part: GeminiPart, parts: GenerationPart[]): void {
    if (part.functionCall) {
      const index = this.calls.get(choice) ?? 0;
      if (index > 0 && !this.parallelCalls) return;
      this.calls.set(choice, index + 1);
      const id = `call_${randomId()}`;
      const signature = part.thoughtSignature;
      parts.push({
        type: "tool-call",
        choice,
        index,
        id: typeof signature === "string" && signature ? idWithThoughtSignature(id, signature) : id,
        name: part.functionCall.name ?? "",
        argumentsDelta: JSON.stringify(part.functionCall.args ?? {}),
      });
      return;
    }
    if (part.text) parts.push({ type: part.thought ? "reasoning" : "text", choice, text: part.text });
  }

  private endChoice(choice: number, reason: FinishReason, parts: GenerationPart[]): void {
    if (this.finished.has(choice)) return;
    this.finished.add(choice);
    parts.push({ type: "finish", choice, reason });
  }
}
