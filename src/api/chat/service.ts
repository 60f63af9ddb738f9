import { invalidRequest } from "../../core/errors.js";
import type { ChatMessage, GenerationRequest } from "../../core/generation.js";
import {
  type ContentPart,
  type OutputConstraint,
  type ToolCall,
  type ToolChoice,
  type ToolDefinition,
  textContent,
} from "../../core/messages.js";
import { assertUniqueToolNames, imageSource, resolveToolChoice } from "../common-fields.js";
import { toSampling, toStop } from "../sampling.js";
import type { ChatRequest, WireChatMessage, WireToolCall } from "./schema.js";

/** Features of the API that later work adds; until then they are refused, never ignored. */
const NOT_YET_SUPPORTED: ReadonlyArray<keyof ChatRequest> = [
  "functions",
  "function_call",
  "audio",
  "prediction",
  "web_search_options",
  "verbosity",
  "moderation",
  "prompt_cache_options",
];

export interface ChatLimits {
  maxN: number;
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
  const stop = toStop(req.stop);
  const messages = req.messages.map((m, i) => toChatMessage(m, i));
  checkToolResults(messages);

  return {
    model,
    input: { kind: "chat", messages },
    sampling: toSampling(req),
    maxTokens,
    stop,
    n,
    logprobs: req.logprobs ? { top: req.top_logprobs ?? 0 } : undefined,
    constraint: toConstraint(req),
    ...(req.reasoning_effort ? { reasoningEffort: req.reasoning_effort } : {}),
  };
}

/** Every tool message answers a call an earlier assistant message made. */
function checkToolResults(messages: readonly ChatMessage[]): void {
  const calls = new Set<string>();
  messages.forEach((message, i) => {
    if (message.role === "assistant") for (const call of message.toolCalls ?? []) calls.add(call.id);
    if (message.role === "tool" && !calls.has(message.toolCallId)) {
      throw invalidRequest(
        `messages[${i}] answers tool_call_id '${message.toolCallId}', but no earlier assistant message made a call with that id.`,
        `messages[${i}].tool_call_id`,
      );
    }
  });
}

function rejectUnsupported(req: ChatRequest): void {
  for (const field of NOT_YET_SUPPORTED) {
    const value = req[field];
    if (value === undefined || value === null) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    throw invalidRequest(`'${field}' is not supported by this server yet.`, field, "unsupported_parameter");
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

function toChatMessage(message: WireChatMessage, index: number): ChatMessage {
  const at = `messages[${index}]`;
  switch (message.role) {
    case "function":
      throw invalidRequest("The deprecated 'function' role is not supported; use 'tool'.", `${at}.role`);
    case "assistant": {
      if (message.audio) throw invalidRequest("Audio is not supported by this server.", `${at}.audio`);
      const content = message.content ?? "";
      const parts: ContentPart[] = [];
      let refusal = message.refusal ?? undefined;
      if (typeof content === "string") parts.push(...textContent(content));
      else {
        for (const part of content) {
          if (part.type === "text") parts.push({ type: "text", text: part.text });
          else refusal = (refusal ?? "") + part.refusal;
        }
      }
      const toolCalls = toToolCalls(message.tool_calls, message.function_call ?? undefined);
      return {
        role: "assistant",
        content: parts,
        ...(message.name ? { name: message.name } : {}),
        ...(toolCalls ? { toolCalls } : {}),
        ...(refusal ? { refusal } : {}),
        ...(message.reasoning_content ? { reasoning: message.reasoning_content } : {}),
      };
    }
    case "tool":
      return { role: "tool", content: toTextParts(message.content), toolCallId: message.tool_call_id };
    case "user":
      return withName({ role: "user", content: toUserParts(message.content, at) }, message.name);
    default:
      return withName({ role: message.role, content: toTextParts(message.content) }, message.name);
  }
}

function withName<M extends ChatMessage>(message: M, name: string | undefined): M {
  return name ? { ...message, name } : message;
}

function toTextParts(content: string | { text: string }[]): ContentPart[] {
  return typeof content === "string"
    ? textContent(content)
    : content.map((p) => ({ type: "text", text: p.text }));
}

function toUserParts(
  content: Extract<WireChatMessage, { role: "user" }>["content"],
  at: string,
): ContentPart[] {
  if (typeof content === "string") return textContent(content);
  return content.map((part, i): ContentPart => {
    const param = `${at}.content[${i}]`;
    switch (part.type) {
      case "text":
        return { type: "text", text: part.text };
      case "image_url":
        return {
          type: "image",
          source: imageSource(part.image_url.url, `${param}.image_url.url`),
          detail: part.image_url.detail,
        };
      case "input_audio":
        return { type: "audio", format: part.input_audio.format, base64: part.input_audio.data };
      default:
        return {
          type: "file",
          fileId: part.file.file_id,
          filename: part.file.filename,
          base64: part.file.file_data,
        };
    }
  });
}

function toToolCalls(
  calls: WireToolCall[] | undefined,
  legacy: { name: string; arguments: string } | undefined,
): ToolCall[] | undefined {
  if (calls?.length) {
    return calls.map((call) => ({
      id: call.id,
      name: call.function.name,
      arguments: call.function.arguments,
    }));
  }
  if (legacy) return [{ id: "", name: legacy.name, arguments: legacy.arguments }];
  return undefined;
}

/** tools, tool_choice, parallel_tool_calls and response_format as one constraint on the output. */
function toConstraint(req: ChatRequest): OutputConstraint | undefined {
  const constraint: OutputConstraint = {};
  const definitions = (req.tools ?? []).map(
    (tool, i): ToolDefinition => ({
      name: tool.function.name,
      description: tool.function.description,
      parameters: tool.function.parameters,
      strict: tool.function.strict ?? false,
      param: `tools[${i}].function.parameters`,
    }),
  );
  assertUniqueToolNames(
    definitions.map((tool) => tool.name),
    (i) => `tools[${i}].function.name`,
  );
  const choice = toToolChoice(req.tool_choice, definitions);
  if (definitions.length > 0) {
    constraint.tools = { definitions, choice, parallel: req.parallel_tool_calls ?? true, param: "tools" };
  }
  const format = req.response_format;
  if (format && format.type !== "text") {
    constraint.format = {
      param: "response_format",
      schemaParam: "response_format.json_schema.schema",
      value:
        format.type === "json_object"
          ? { type: "json_object" }
          : {
              type: "json_schema",
              name: format.json_schema.name,
              schema: format.json_schema.schema ?? {},
              strict: format.json_schema.strict ?? false,
            },
    };
  }
  return constraint.tools || constraint.format ? constraint : undefined;
}

function toToolChoice(choice: ChatRequest["tool_choice"], tools: readonly ToolDefinition[]): ToolChoice {
  const names = tools.map((tool) => tool.name);
  if (choice == null || typeof choice === "string") return resolveToolChoice(choice, names);
  if (choice.type === "function")
    return resolveToolChoice({ named: choice.function.name, param: "tool_choice" }, names);
  return resolveToolChoice(
    {
      allowed: choice.allowed_tools.tools.map((tool, i) => ({
        name: tool.function.name,
        param: `tool_choice.allowed_tools.tools[${i}].function.name`,
      })),
      required: choice.allowed_tools.mode === "required",
    },
    names,
  );
}
