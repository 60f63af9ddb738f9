import type { FinishReason, GenerationPart } from "../../../core/generation.js";
import type { StreamDecoder } from "../provider-adapter.js";
import { type EventSourceMessage, parseEventJson } from "../sse-events.js";
import { upstreamProtocolError, upstreamStreamError } from "../upstream-errors.js";
import { idWithThinking, MAX_CARRYING_ID, type SignedThinking } from "./thinking-in-call-id.js";

const STOP_REASONS: Readonly<Record<string, FinishReason>> = {
  end_turn: "stop",
  stop_sequence: "stop",
  pause_turn: "stop",
  max_tokens: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};

/** The fields of Messages API stream events this server reads. */
interface AnthropicEvent {
  type?: string;
  index?: number;
  message?: { usage?: AnthropicUsage };
  content_block?: AnthropicBlock;
  delta?: AnthropicDelta;
  usage?: AnthropicUsage;
  error?: { message?: string };
}

interface AnthropicBlock {
  type?: string;
  id?: string;
  name?: string;
  text?: string;
  thinking?: string;
  signature?: string;
  data?: string;
}

interface AnthropicDelta {
  type?: string;
  text?: string;
  thinking?: string;
  signature?: string;
  partial_json?: string;
  stop_reason?: string | null;
}

interface AnthropicUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_read_input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
}

/**
 * Messages API stream events → parts: text and thinking deltas, tool_use blocks as tool-call
 * pieces (the block's start carries id and name, input_json_delta the argument text), stop_reason
 * as the finish, and usage (cache reads and writes counted as prompt tokens) at message_stop.
 * Thinking and redacted_thinking blocks are also kept whole, signature included, until the next
 * tool call, whose id carries them (see thinking-in-call-id.ts).
 * With a JSON response format, the call of the format's tool is the answer: its input is the
 * message's text, and its stop is a plain stop.
 */
export class AnthropicEventDecoder implements StreamDecoder {
  complete = false;
  /** Content blocks that are the call of the response format's tool. */
  private readonly formatBlocks = new Set<number>();
  /** Content block index → tool call index, for blocks that are tool calls. */
  private readonly toolCalls = new Map<number, number>();
  /** Content block index → a thinking block being streamed. */
  private readonly thinkingBlocks = new Map<number, SignedThinking & { type: "thinking" }>();
  /** Signed blocks since the last tool call, for the next one's id. */
  private signed: SignedThinking[] = [];
  /** Characters kept in `signed`: past what an id can carry, nothing is kept. */
  private signedChars = 0;
  private signedOverflow = false;
  private readonly usage: Required<{ [K in keyof AnthropicUsage]: number }> = {
    input_tokens: 0,
    output_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation_input_tokens: 0,
  };

  /** `formatTool`: the tool a JSON response format was asked for through, if one was. */
  constructor(private readonly formatTool?: string) {}

  read(event: EventSourceMessage): GenerationPart[] {
    const data = parseEventJson(event.data) as AnthropicEvent | undefined;
    if (!data || typeof data !== "object") throw upstreamProtocolError("an event that is not JSON");
    switch (data.type) {
      case "message_start":
        this.addUsage(data.message?.usage);
        return [];
      case "content_block_start":
        return this.blockStart(data.index ?? 0, data.content_block);
      case "content_block_delta":
        return this.blockDelta(data.index ?? 0, data.delta);
      case "message_delta": {
        this.addUsage(data.usage);
        const reason = data.delta?.stop_reason;
        if (!reason) return [];
        const finish = reason === "tool_use" && this.formatTool ? "stop" : (STOP_REASONS[reason] ?? "stop");
        return [{ type: "finish", choice: 0, reason: finish }];
      }
      case "message_stop":
        this.complete = true;
        return [this.usagePart()];
      case "error":
        throw upstreamStreamError(data.error?.message);
      default:
        // ping, content_block_stop and event types added later carry nothing we need.
        return [];
    }
  }

  finish(): GenerationPart[] {
    if (!this.complete) throw upstreamProtocolError("an answer that ended before it was complete");
    return [];
  }

  private blockStart(index: number, block: AnthropicBlock | undefined): GenerationPart[] {
    if (block?.type === "thinking") {
      const thinking = {
        type: "thinking" as const,
        thinking: typeof block.thinking === "string" ? block.thinking : "",
        signature: typeof block.signature === "string" ? block.signature : "",
      };
      this.thinkingBlocks.set(index, thinking);
      this.keepSigned(thinking, thinking.thinking.length + thinking.signature.length);
      return thinking.thinking ? [{ type: "reasoning", choice: 0, text: thinking.thinking }] : [];
    }
    if (block?.type === "redacted_thinking") {
      if (typeof block.data === "string" && block.data)
        this.keepSigned({ type: "redacted_thinking", data: block.data }, block.data.length);
      return [];
    }
    if (this.formatTool) {
      // Forced, the call is all the answer: any text around it would break the JSON.
      if (block?.type === "tool_use" && block.name === this.formatTool) this.formatBlocks.add(index);
      return [];
    }
    if (block?.type === "tool_use") {
      const call = this.toolCalls.size;
      this.toolCalls.set(index, call);
      const id = this.signedOverflow ? (block.id ?? "") : idWithThinking(block.id ?? "", this.wholeSigned());
      this.signed = [];
      this.signedChars = 0;
      this.signedOverflow = false;
      return [
        {
          type: "tool-call",
          choice: 0,
          index: call,
          id,
          name: block.name ?? "",
          argumentsDelta: "",
        },
      ];
    }
    if (block?.type === "text" && block.text) return [{ type: "text", choice: 0, text: block.text }];
    return [];
  }

  private blockDelta(index: number, delta: AnthropicDelta | undefined): GenerationPart[] {
    switch (delta?.type) {
      case "text_delta":
        return delta.text && !this.formatTool ? [{ type: "text", choice: 0, text: delta.text }] : [];
      case "thinking_delta": {
        if (typeof delta.thinking !== "string" || !delta.thinking) return [];
        const block = this.thinkingBlocks.get(index);
        if (block && !this.signedOverflow) {
          block.thinking += delta.thinking;
          this.countSigned(delta.thinking.length);
        }
        return [{ type: "reasoning", choice: 0, text: delta.thinking }];
      }
      case "signature_delta": {
        const block = this.thinkingBlocks.get(index);
        if (block && typeof delta.signature === "string") {
          block.signature += delta.signature;
          this.countSigned(delta.signature.length);
        }
        return [];
      }
      case "input_json_delta": {
        if (this.formatBlocks.has(index)) {
          return delta.partial_json ? [{ type: "text", choice: 0, text: delta.partial_json }] : [];
        }
        const call = this.toolCalls.get(index);
        if (call === undefined) throw upstreamProtocolError("tool input for a block that is not a tool call");
        return delta.partial_json
          ? [{ type: "tool-call", choice: 0, index: call, argumentsDelta: delta.partial_json }]
          : [];
      }
      default:
        return [];
    }
  }

  private keepSigned(block: SignedThinking, chars: number): void {
    if (this.signedOverflow) return;
    this.signed.push(block);
    this.countSigned(chars);
  }

  private countSigned(chars: number): void {
    this.signedChars += chars;
    if (this.signedChars > MAX_CARRYING_ID * 4) {
      // Far more than deflate could fit in an id: stop holding it.
      this.signedOverflow = true;
      this.signed = [];
    }
  }

  /** The kept blocks, when every one is whole: a thinking block without its signature cannot go back. */
  private wholeSigned(): SignedThinking[] {
    return this.signed.every((block) => block.type === "redacted_thinking" || block.signature !== "")
      ? this.signed
      : [];
  }

  private addUsage(usage: AnthropicUsage | undefined): void {
    if (!usage) return;
    // message_delta's counts are cumulative: the latest value of each wins.
    for (const key of Object.keys(this.usage) as (keyof AnthropicUsage)[]) {
      const value = usage[key];
      if (typeof value === "number") this.usage[key] = value;
    }
  }

  private usagePart(): GenerationPart {
    const u = this.usage;
    return {
      type: "usage",
      promptTokens: u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens,
      completionTokens: u.output_tokens,
      cachedTokens: u.cache_read_input_tokens,
    };
  }
}
