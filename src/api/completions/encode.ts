import type {
  FinishReason,
  GenerationPart,
  PromptTokenLogprob,
  TokenLogprob,
  UsageCounts,
} from "../../core/generation.js";
import type { SseWriter } from "../../http/sse.js";
import type { CompletionShape } from "./service.js";

export interface CompletionMeta {
  id: string;
  created: number;
  /** The model name as the caller sent it. */
  model: string;
  systemFingerprint: string;
}

/**
 * The legacy logprobs object: parallel arrays, alternatives as {token: logprob} maps. A prompt's
 * first token (echo) has null for both, as OpenAI sends it.
 */
interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

function legacyLogprobs(
  entries: readonly (TokenLogprob | PromptTokenLogprob)[],
  startOffset: number,
  out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] },
): LegacyLogprobs {
  let offset = startOffset;
  for (const entry of entries) {
    out.tokens.push(entry.token);
    out.token_logprobs.push(entry.logprob);
    out.top_logprobs.push(entry.top && Object.fromEntries(entry.top.map((alt) => [alt.token, alt.logprob])));
    out.text_offset.push(offset);
    offset += entry.token.length;
  }
  return out;
}

/** A choice's logprobs: the echoed prompt's tokens (from offset 0), then the completion's. */
function choiceLogprobs(choice: GeneratedChoice, echo: string): LegacyLogprobs {
  const prompt = legacyLogprobs(choice.promptLogprobs ?? [], 0);
  return legacyLogprobs(choice.logprobs, echo.length, prompt);
}

function encodeUsage(usage: UsageCounts) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

interface GeneratedChoice {
  text: string;
  logprobs: TokenLogprob[];
  /** echo with logprobs: the prompt's tokens scored. */
  promptLogprobs?: PromptTokenLogprob[];
  finish: FinishReason | null;
}

const sumLogprob = (choice: GeneratedChoice) =>
  choice.logprobs.reduce((sum, entry) => sum + entry.logprob, 0);

/**
 * Non-streaming: every choice collected; with best_of, each prompt keeps its `n` choices of the
 * highest summed log probability, in that order.
 */
export function collectCompletion(
  parts: readonly GenerationPart[],
  meta: CompletionMeta,
  shape: CompletionShape,
): { body: object; usage: UsageCounts | undefined } {
  const generated: GeneratedChoice[] = Array.from({ length: shape.prompts * shape.bestOf }, () => ({
    text: "",
    logprobs: [],
    finish: null,
  }));
  let usage: UsageCounts | undefined;
  for (const part of parts) {
    if (part.type === "usage") usage = part;
    else if (part.type === "text") {
      const choice = generated[part.choice] as GeneratedChoice;
      choice.text += part.text;
      if (part.logprobs) for (const entry of part.logprobs) choice.logprobs.push(entry);
    } else if (part.type === "prompt-logprobs") {
      (generated[part.choice] as GeneratedChoice).promptLogprobs = part.logprobs;
    } else if (part.type === "finish") (generated[part.choice] as GeneratedChoice).finish = part.reason;
  }
  const choices: object[] = [];
  for (let prompt = 0; prompt < shape.prompts; prompt++) {
    let candidates = generated.slice(prompt * shape.bestOf, (prompt + 1) * shape.bestOf);
    if (shape.bestOf > shape.n) candidates = [...candidates].sort((a, b) => sumLogprob(b) - sumLogprob(a));
    const echo = shape.echo?.[prompt] ?? "";
    for (const choice of candidates.slice(0, shape.n)) {
      choices.push({
        text: echo + choice.text,
        index: choices.length,
        logprobs: shape.logprobs === undefined ? null : choiceLogprobs(choice, echo),
        finish_reason: choice.finish ?? "stop",
      });
    }
  }
  const body = {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.systemFingerprint,
    choices,
    usage: usage ? encodeUsage(usage) : undefined,
  };
  return { body, usage };
}

/** Streaming: text_completion events, the envelope serialised once per response. */
export class CompletionChunkEncoder {
  private readonly head: string;

  constructor(meta: CompletionMeta) {
    this.head = `{"id":${JSON.stringify(meta.id)},"object":"text_completion","created":${meta.created},"model":${JSON.stringify(meta.model)},"system_fingerprint":${JSON.stringify(meta.systemFingerprint)},"choices":`;
  }

  textChunk(choice: number, text: string, logprobs: LegacyLogprobs | null): string {
    return `${this.head}[{"text":${JSON.stringify(text)},"index":${choice},"logprobs":${JSON.stringify(logprobs)},"finish_reason":null}]}`;
  }

  finishChunk(choice: number, reason: FinishReason): string {
    return `${this.head}[{"text":"","index":${choice},"logprobs":null,"finish_reason":"${reason}"}]}`;
  }

  usageChunk(usage: UsageCounts): string {
    return `${this.head}[],"usage":${JSON.stringify(encodeUsage(usage))}}`;
  }
}

/** Writes every part as SSE (no best_of here: the service refuses it with stream). */
export async function streamCompletion(
  parts: AsyncIterator<GenerationPart>,
  first: GenerationPart | undefined,
  sse: SseWriter,
  encoder: CompletionChunkEncoder,
  shape: CompletionShape,
  includeUsage: boolean,
): Promise<void> {
  const offsets: number[] = [];
  const echoOf = (choice: number) => shape.echo?.[Math.floor(choice / shape.n)] ?? "";
  // With logprobs the echo goes out with its prompt's scores, when they arrive (before any text).
  const scoredEcho = shape.echo !== undefined && shape.logprobs !== undefined;
  for (let choice = 0; choice < shape.prompts * shape.n; choice++) {
    const echo = echoOf(choice);
    offsets.push(echo.length);
    if (echo && !scoredEcho) await sse.sendRaw(encoder.textChunk(choice, echo, null));
  }
  let part = first;
  while (part && sse.isOpen) {
    if (part.type === "prompt-logprobs" && scoredEcho) {
      await sse.sendRaw(
        encoder.textChunk(part.choice, echoOf(part.choice), legacyLogprobs(part.logprobs, 0)),
      );
    } else if (part.type === "text") {
      const offset = offsets[part.choice] ?? 0;
      const logprobs = shape.logprobs === undefined ? null : legacyLogprobs(part.logprobs ?? [], offset);
      offsets[part.choice] = offset + part.text.length;
      await sse.sendRaw(encoder.textChunk(part.choice, part.text, logprobs));
    } else if (part.type === "finish") {
      await sse.sendRaw(encoder.finishChunk(part.choice, part.reason));
    } else if (part.type === "usage" && includeUsage) {
      await sse.sendRaw(encoder.usageChunk(part));
    }
    const next = await parts.next();
    part = next.done ? undefined : next.value;
  }
}
