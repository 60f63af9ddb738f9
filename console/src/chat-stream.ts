/**
 * A streamed chat completion put together chunk by chunk, as the playground shows it: the text,
 * the reasoning and a refusal as they grow, each tool call's name and then its arguments as they
 * arrive, the tokens with their log probabilities, the stop reason and the usage.
 */

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** One sampled token and the alternatives the model weighed for it. */
export interface TokenView {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

/** A tool call as far as it has arrived. */
export interface StreamedCall {
  index: number;
  id: string;
  name: string;
  arguments: string;
}

export interface StreamedReply {
  text: string;
  reasoning: string;
  refusal: string;
  calls: StreamedCall[];
  tokens?: TokenView[];
  finishReason?: string;
  usage?: Usage;
  timeToFirstTokenMs?: number;
  tokensPerSecond?: number;
}

interface ChunkToolCall {
  index?: number;
  id?: string;
  function?: { name?: string; arguments?: string };
}

interface ChunkChoice {
  delta?: {
    content?: string | null;
    reasoning_content?: string | null;
    refusal?: string | null;
    tool_calls?: ChunkToolCall[];
  };
  finish_reason?: string | null;
  logprobs?: {
    content?: { token: string; logprob: number; top_logprobs?: { token: string; logprob: number }[] }[];
  } | null;
}

export function emptyReply(): StreamedReply {
  return { text: "", reasoning: "", refusal: "", calls: [] };
}

/** Adds one chunk to the reply (in place); true when it carried output (the first one sets the TTFT). */
export function applyChunk(reply: StreamedReply, chunk: Record<string, unknown>): boolean {
  const choice = (chunk.choices as ChunkChoice[] | undefined)?.[0];
  const delta = choice?.delta;
  let output = false;
  if (delta?.content) {
    reply.text += delta.content;
    output = true;
  }
  if (delta?.reasoning_content) {
    reply.reasoning += delta.reasoning_content;
    output = true;
  }
  if (delta?.refusal) {
    reply.refusal += delta.refusal;
    output = true;
  }
  for (const piece of delta?.tool_calls ?? []) {
    output = true;
    const index = piece.index ?? 0;
    let call = reply.calls.find((c) => c.index === index);
    if (!call) {
      call = { index, id: "", name: "", arguments: "" };
      reply.calls.push(call);
    }
    if (piece.id) call.id = piece.id;
    if (piece.function?.name) call.name += piece.function.name;
    if (piece.function?.arguments) call.arguments += piece.function.arguments;
  }
  for (const entry of choice?.logprobs?.content ?? []) {
    reply.tokens ??= [];
    reply.tokens.push({ token: entry.token, logprob: entry.logprob, top: entry.top_logprobs ?? [] });
  }
  if (choice?.finish_reason) reply.finishReason = choice.finish_reason;
  if (chunk.usage) reply.usage = chunk.usage as Usage;
  return output;
}
