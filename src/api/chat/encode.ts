import type { FinishReason, GenerationPart, TokenLogprob, UsageCounts } from "../../core/generation.js";
import type { SseWriter } from "../../http/sse.js";

export interface ChatResponseMeta {
  id: string;
  created: number;
  /** The model name as the caller sent it. */
  model: string;
  systemFingerprint: string;
}

export type { UsageCounts };

export function encodeUsage(usage: UsageCounts) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: usage.reasoningTokens ?? 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

export function encodeLogprobs(entries: readonly TokenLogprob[]) {
  return {
    content: entries.map((e) => ({
      token: e.token,
      logprob: e.logprob,
      bytes: e.bytes,
      top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
    })),
    refusal: null,
  };
}

/** One choice's answer as the parts arrive. */
class ChoiceAccumulator {
  content = "";
  reasoning = "";
  refusal = "";
  readonly logprobs: TokenLogprob[] = [];
  readonly toolCalls: { id: string; name: string; arguments: string }[] = [];
  finish: FinishReason | null = null;

  add(part: Exclude<GenerationPart, { type: "usage" }>): void {
    switch (part.type) {
      case "text":
        this.content += part.text;
        if (part.logprobs) for (const entry of part.logprobs) this.logprobs.push(entry);
        return;
      case "reasoning":
        this.reasoning += part.text;
        return;
      case "refusal":
        this.refusal += part.text;
        return;
      case "tool-call": {
        let call = this.toolCalls[part.index];
        if (!call) {
          call = { id: "", name: "", arguments: "" };
          this.toolCalls[part.index] = call;
        }
        if (part.id) call.id = part.id;
        if (part.name) call.name = part.name;
        call.arguments += part.argumentsDelta;
        return;
      }
      case "finish":
        this.finish = part.reason;
    }
  }

  message() {
    const toolCalls = this.toolCalls.filter(Boolean);
    return {
      role: "assistant",
      // A message that only calls tools has no content, as OpenAI answers.
      content: this.content === "" && toolCalls.length > 0 ? null : this.content,
      refusal: this.refusal || null,
      annotations: [],
      ...(this.reasoning ? { reasoning_content: this.reasoning } : {}),
      ...(toolCalls.length > 0
        ? {
            tool_calls: toolCalls.map((call) => ({
              id: call.id,
              type: "function",
              function: { name: call.name, arguments: call.arguments },
            })),
          }
        : {}),
    };
  }
}

/** Non-streaming: the same parts the stream would carry, collected into one chat.completion. */
export function collectChatCompletion(
  parts: readonly GenerationPart[],
  meta: ChatResponseMeta,
  n: number,
  wantLogprobs: boolean,
): { body: object; usage: UsageCounts | undefined } {
  const choices: ChoiceAccumulator[] = [];
  for (let i = 0; i < n; i++) choices.push(new ChoiceAccumulator());
  let usage: UsageCounts | undefined;
  for (const part of parts) {
    if (part.type === "usage") usage = part;
    else choices[part.choice]?.add(part);
  }
  const body = {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: choices.map((choice, index) => ({
      index,
      message: choice.message(),
      logprobs: wantLogprobs ? encodeLogprobs(choice.logprobs) : null,
      finish_reason: choice.finish ?? "stop",
    })),
    usage: usage ? encodeUsage(usage) : undefined,
    service_tier: "default",
    system_fingerprint: meta.systemFingerprint,
  };
  return { body, usage };
}

/**
 * Streaming: chat.completion.chunk events. The envelope (id, created, model, fingerprint) is
 * serialised once per response; each event only serialises its choices.
 */
export class ChatChunkEncoder {
  private readonly head: string;
  private readonly tail: string;

  constructor(meta: ChatResponseMeta, includeUsage: boolean) {
    this.head = `{"id":${JSON.stringify(meta.id)},"object":"chat.completion.chunk","created":${meta.created},"model":${JSON.stringify(meta.model)},"service_tier":"default","system_fingerprint":${JSON.stringify(meta.systemFingerprint)},"choices":`;
    this.tail = includeUsage ? `,"usage":null}` : "}";
  }

  roleChunk(choice: number): string {
    return `${this.head}[{"index":${choice},"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]${this.tail}`;
  }

  textChunk(choice: number, text: string, logprobs: TokenLogprob[] | undefined): string {
    const lp = logprobs ? JSON.stringify(encodeLogprobs(logprobs)) : "null";
    return `${this.head}[{"index":${choice},"delta":{"content":${JSON.stringify(text)}},"logprobs":${lp},"finish_reason":null}]${this.tail}`;
  }

  deltaChunk(choice: number, field: "reasoning_content" | "refusal", text: string): string {
    return `${this.head}[{"index":${choice},"delta":{"${field}":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]${this.tail}`;
  }

  /** The first piece of a call carries its id, type and name; later ones only argument text. */
  toolCallChunk(part: Extract<GenerationPart, { type: "tool-call" }>): string {
    const call =
      part.id !== undefined || part.name !== undefined
        ? {
            index: part.index,
            id: part.id,
            type: "function",
            function: { name: part.name, arguments: part.argumentsDelta },
          }
        : { index: part.index, function: { arguments: part.argumentsDelta } };
    return `${this.head}[{"index":${part.choice},"delta":{"tool_calls":[${JSON.stringify(call)}]},"logprobs":null,"finish_reason":null}]${this.tail}`;
  }

  finishChunk(choice: number, reason: FinishReason): string {
    return `${this.head}[{"index":${choice},"delta":{},"logprobs":null,"finish_reason":"${reason}"}]${this.tail}`;
  }

  usageChunk(usage: UsageCounts): string {
    return `${this.head}[],"usage":${JSON.stringify(encodeUsage(usage))}}`;
  }
}

/** Writes every part as SSE; the writer must already be open. Returns the usage seen. */
export async function streamChatCompletion(
  parts: AsyncIterator<GenerationPart>,
  first: GenerationPart | undefined,
  sse: SseWriter,
  encoder: ChatChunkEncoder,
  opts: { n: number; includeUsage: boolean },
): Promise<UsageCounts | undefined> {
  for (let choice = 0; choice < opts.n; choice++) await sse.sendRaw(encoder.roleChunk(choice));
  let usage: UsageCounts | undefined;
  let part = first;
  while (part && sse.isOpen) {
    switch (part.type) {
      case "text":
        await sse.sendRaw(encoder.textChunk(part.choice, part.text, part.logprobs));
        break;
      case "reasoning":
        await sse.sendRaw(encoder.deltaChunk(part.choice, "reasoning_content", part.text));
        break;
      case "refusal":
        await sse.sendRaw(encoder.deltaChunk(part.choice, "refusal", part.text));
        break;
      case "tool-call":
        await sse.sendRaw(encoder.toolCallChunk(part));
        break;
      case "finish":
        await sse.sendRaw(encoder.finishChunk(part.choice, part.reason));
        break;
      case "usage":
        usage = part;
        if (opts.includeUsage) await sse.sendRaw(encoder.usageChunk(part));
    }
    const next = await parts.next();
    part = next.done ? undefined : next.value;
  }
  return usage;
}
