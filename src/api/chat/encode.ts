import type { FinishReason, GenerationPart, TokenLogprob } from "../../core/generation.js";
import type { SseWriter } from "../../http/sse.js";

export interface ChatResponseMeta {
  id: string;
  created: number;
  /** The model name as the caller sent it. */
  model: string;
  systemFingerprint: string;
}

export interface UsageCounts {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

export function encodeUsage(usage: UsageCounts) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
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

/** Non-streaming: the same parts the stream would carry, collected into one chat.completion. */
export async function collectChatCompletion(
  parts: AsyncIterable<GenerationPart>,
  meta: ChatResponseMeta,
  n: number,
  wantLogprobs: boolean,
): Promise<{ body: object; usage: UsageCounts | undefined }> {
  const texts: string[] = Array.from({ length: n }, () => "");
  const logprobs: TokenLogprob[][] = Array.from({ length: n }, () => []);
  const finish: (FinishReason | null)[] = Array.from({ length: n }, () => null);
  let usage: UsageCounts | undefined;
  for await (const part of parts) {
    if (part.type === "text") {
      texts[part.choice] += part.text;
      if (part.logprobs) {
        const collected = logprobs[part.choice] as TokenLogprob[];
        for (const entry of part.logprobs) collected.push(entry);
      }
    } else if (part.type === "finish") finish[part.choice] = part.reason;
    else usage = part;
  }
  const body = {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: texts.map((content, index) => ({
      index,
      message: { role: "assistant", content, refusal: null, annotations: [] },
      logprobs: wantLogprobs ? encodeLogprobs(logprobs[index] as TokenLogprob[]) : null,
      finish_reason: finish[index] ?? "stop",
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
    if (part.type === "text") await sse.sendRaw(encoder.textChunk(part.choice, part.text, part.logprobs));
    else if (part.type === "finish") await sse.sendRaw(encoder.finishChunk(part.choice, part.reason));
    else {
      usage = part;
      if (opts.includeUsage) await sse.sendRaw(encoder.usageChunk(part));
    }
    const next = await parts.next();
    part = next.done ? undefined : next.value;
  }
  return usage;
}
