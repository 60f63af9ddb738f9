import { invalidRequest } from "../../core/errors.js";
import type { ChatMessage, GenerationRequest } from "../../core/generation.js";
import type { ChatRequest, WireChatMessage } from "./schema.js";

/** Features of the API that later work adds; until then they are refused, never ignored. */
const NOT_YET_SUPPORTED: ReadonlyArray<keyof ChatRequest> = [
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "functions",
  "function_call",
  "audio",
  "prediction",
  "web_search_options",
  "reasoning_effort",
  "verbosity",
  "moderation",
  "prompt_cache_options",
];

export interface ChatLimits {
  maxN: number;
  supportsVision: boolean;
}

/** Wire request → internal request. Throws 400s that name the offending field. */
export function toGenerationRequest(req: ChatRequest, model: string, limits: ChatLimits): GenerationRequest {
  rejectUnsupported(req);
  const n = req.n ?? 1;
  if (n > limits.maxN)
    throw invalidRequest(`n must be at most ${limits.maxN} on this server.`, "n", "invalid_value");
  if (req.stream_options && !req.stream) {
    throw invalidRequest("stream_options is only allowed when stream is true.", "stream_options");
  }
  if (req.top_logprobs != null && !req.logprobs) {
    throw invalidRequest("top_logprobs requires logprobs to be true.", "top_logprobs");
  }
  if (
    req.max_tokens != null &&
    req.max_completion_tokens != null &&
    req.max_tokens !== req.max_completion_tokens
  ) {
    throw invalidRequest("Give max_completion_tokens or max_tokens, not both.", "max_tokens");
  }
  const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? undefined;
  const stop = req.stop == null ? [] : typeof req.stop === "string" ? [req.stop] : req.stop;

  return {
    model,
    input: { kind: "chat", messages: req.messages.map((m, i) => toChatMessage(m, i, limits)) },
    sampling: {
      temperature: req.temperature ?? 1,
      topP: req.top_p ?? 1,
      seed: req.seed == null ? undefined : toSeed(req.seed),
      presencePenalty: req.presence_penalty ?? 0,
      frequencyPenalty: req.frequency_penalty ?? 0,
      logitBias: req.logit_bias ? toLogitBias(req.logit_bias) : undefined,
    },
    maxTokens,
    stop,
    n,
    logprobs: req.logprobs ? { top: req.top_logprobs ?? 0 } : undefined,
  };
}

function rejectUnsupported(req: ChatRequest): void {
  for (const field of NOT_YET_SUPPORTED) {
    const value = req[field];
    if (value === undefined || value === null) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    if (field === "tool_choice" && value === "none") continue;
    throw invalidRequest(`'${field}' is not supported by this server yet.`, field, "unsupported_parameter");
  }
  const format = req.response_format as { type?: unknown } | null | undefined;
  if (format != null && format.type !== "text") {
    throw invalidRequest(
      "response_format other than 'text' is not supported by this server yet.",
      "response_format",
      "unsupported_parameter",
    );
  }
  if (req.modalities?.includes("audio")) {
    throw invalidRequest(
      "Audio output is not supported by this server.",
      "modalities",
      "unsupported_parameter",
    );
  }
  if (req.store) {
    throw invalidRequest(
      "Stored chat completions (store: true) are not supported by this server yet.",
      "store",
      "unsupported_parameter",
    );
  }
  if (req.prompt_cache_retention != null && req.prompt_cache_retention !== "in_memory") {
    throw invalidRequest(
      "Only in_memory prompt cache retention is available.",
      "prompt_cache_retention",
      "unsupported_parameter",
    );
  }
}

function toChatMessage(message: WireChatMessage, index: number, limits: ChatLimits): ChatMessage {
  const at = `messages[${index}]`;
  switch (message.role) {
    case "function":
      throw invalidRequest("The deprecated 'function' role is not supported; use 'tool'.", `${at}.role`);
    case "assistant": {
      if (message.tool_calls?.length || message.function_call) {
        throw invalidRequest(
          "Assistant tool calls are not supported by this server yet.",
          `${at}.tool_calls`,
          "unsupported_parameter",
        );
      }
      if (message.audio) throw invalidRequest("Audio is not supported by this server.", `${at}.audio`);
      const content = message.content ?? "";
      const text =
        typeof content === "string"
          ? content
          : content.map((p) => (p.type === "text" ? p.text : p.refusal)).join("");
      return withName({ role: "assistant", content: text }, message.name);
    }
    case "tool":
      return { role: "tool", content: flattenText(message.content), toolCallId: message.tool_call_id };
    case "user":
      return withName(
        { role: "user", content: flattenUserContent(message.content, at, limits) },
        message.name,
      );
    default:
      return withName({ role: message.role, content: flattenText(message.content) }, message.name);
  }
}

function withName(message: ChatMessage, name: string | undefined): ChatMessage {
  return name ? { ...message, name } : message;
}

function flattenText(content: string | { text: string }[]): string {
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

function flattenUserContent(
  content: Extract<WireChatMessage, { role: "user" }>["content"],
  at: string,
  limits: ChatLimits,
): string {
  if (typeof content === "string") return content;
  let text = "";
  content.forEach((part, i) => {
    const param = `${at}.content[${i}]`;
    if (part.type === "text") text += part.text;
    else if (part.type === "image_url") {
      if (!limits.supportsVision)
        throw invalidRequest("This model does not support image inputs.", param, "unsupported_content");
      throw invalidRequest(
        "Image inputs are not supported by this server yet.",
        param,
        "unsupported_content",
      );
    } else if (part.type === "input_audio") {
      throw invalidRequest("This model does not support audio inputs.", param, "unsupported_content");
    } else {
      throw invalidRequest(
        "File inputs are not supported in chat completions by this server.",
        param,
        "unsupported_content",
      );
    }
  });
  return text;
}

/** The engine's seed is 32-bit; larger seeds fold into that range deterministically. */
function toSeed(seed: number): number {
  const m = 2 ** 32;
  return ((seed % m) + m) % m;
}

function toLogitBias(bias: Record<string, number>): Map<number, number> {
  return new Map(Object.entries(bias).map(([token, value]) => [Number(token), value]));
}
