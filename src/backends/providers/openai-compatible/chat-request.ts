import { unsupportedParameter } from "../../../core/errors.js";
import type { ChatMessage, ContentPart, GenerationRequest } from "../../../core/generation.js";
import type { OutputConstraint, ToolChoice } from "../../../core/messages.js";

/**
 * Our request as the OpenAI wire format, for any server that speaks it (OpenAI, vLLM,
 * llama-server, Ollama, …). Always streamed, with usage asked for, so limits settle on what the
 * upstream counted; whether the caller sees that usage is the encoder's business.
 */

export interface OpenAiRequestOptions {
  upstreamModel: string;
  maxTokensField: "max_tokens" | "max_completion_tokens";
}

export function openAiGenerationBody(req: GenerationRequest, options: OpenAiRequestOptions) {
  const s = req.sampling;
  const body: Record<string, unknown> = {
    model: options.upstreamModel,
    stream: true,
    stream_options: { include_usage: true },
    temperature: s.temperature,
    top_p: s.topP,
    n: req.n,
  };
  if (s.seed !== undefined) body.seed = s.seed;
  if (s.presencePenalty !== 0) body.presence_penalty = s.presencePenalty;
  if (s.frequencyPenalty !== 0) body.frequency_penalty = s.frequencyPenalty;
  // The extensions go on as the caller spelled them (vLLM and llama-server take them; an
  // upstream that does not answers its own 400).
  if (s.topK !== undefined) body.top_k = s.topK;
  if (s.minP !== undefined) body.min_p = s.minP;
  if (s.repetitionPenalty !== undefined) body.repetition_penalty = s.repetitionPenalty;
  // Token ids are the upstream's own: the caller chose them for that model.
  if (s.logitBias && s.logitBias.size > 0) body.logit_bias = Object.fromEntries(s.logitBias);
  if (req.stop.length > 0) body.stop = req.stop;
  if (req.input.kind === "prompts") {
    // /completions has max_tokens only: max_completion_tokens is the chat API's newer name for it.
    if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens;
    const prompts = req.input.prompts.map((p) => ("text" in p ? p.text : p.tokens));
    body.prompt = prompts.length === 1 ? prompts[0] : prompts;
    if (req.logprobs) body.logprobs = req.logprobs.top;
    return body;
  }
  if (req.maxTokens !== undefined) body[options.maxTokensField] = req.maxTokens;
  body.messages = req.input.messages.map(toWireMessage);
  if (req.logprobs) {
    body.logprobs = true;
    if (req.logprobs.top > 0) body.top_logprobs = req.logprobs.top;
  }
  if (req.reasoningEffort) body.reasoning_effort = req.reasoningEffort;
  Object.assign(body, constraintFields(req.constraint));
  return body;
}

function constraintFields(constraint: OutputConstraint | undefined): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const tools = constraint?.tools;
  if (tools) {
    fields.tools = tools.definitions.map((tool) => ({
      type: "function",
      function: {
        name: tool.name,
        ...(tool.description !== undefined && { description: tool.description }),
        ...(tool.parameters !== undefined && { parameters: tool.parameters }),
        ...(tool.strict && { strict: true }),
      },
    }));
    fields.tool_choice = wireToolChoice(tools.choice);
    if (!tools.parallel) fields.parallel_tool_calls = false;
  }
  const format = constraint?.format?.value;
  if (format?.type === "json_object") fields.response_format = { type: "json_object" };
  if (format?.type === "json_schema") {
    fields.response_format = {
      type: "json_schema",
      json_schema: { name: format.name, schema: format.schema, strict: format.strict },
    };
  }
  return fields;
}

function wireToolChoice(choice: ToolChoice): unknown {
  switch (choice.mode) {
    case "named":
      return { type: "function", function: { name: choice.name } };
    case "allowed":
      return {
        type: "allowed_tools",
        allowed_tools: {
          mode: choice.required ? "required" : "auto",
          tools: choice.names.map((name) => ({ type: "function", function: { name } })),
        },
      };
    default:
      return choice.mode;
  }
}

function toWireMessage(message: ChatMessage, index: number): Record<string, unknown> {
  switch (message.role) {
    case "assistant":
      return {
        role: "assistant",
        content: message.content.length > 0 ? wireText(message.content) : null,
        ...(message.name && { name: message.name }),
        ...(message.refusal && { refusal: message.refusal }),
        ...(message.toolCalls?.length && {
          tool_calls: message.toolCalls.map((call) => ({
            id: call.id,
            type: "function",
            function: { name: call.name, arguments: call.arguments },
          })),
        }),
      };
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId, content: wireText(message.content) };
    case "user":
      return {
        role: "user",
        content: message.content.map((part, j) => wireUserPart(part, `messages[${index}].content[${j}]`)),
        ...(message.name && { name: message.name }),
      };
    default:
      return {
        role: message.role,
        content: wireText(message.content),
        ...(message.name && { name: message.name }),
      };
  }
}

function wireText(content: readonly ContentPart[]): string {
  let text = "";
  for (const part of content) if (part.type === "text") text += part.text;
  return text;
}

function wireUserPart(part: ContentPart, param: string): unknown {
  switch (part.type) {
    case "text":
      return { type: "text", text: part.text };
    case "image": {
      // The URL is handed to the upstream as it came; this server never fetches it.
      const url =
        part.source.kind === "url"
          ? part.source.url
          : `data:${part.source.mediaType};base64,${part.source.base64}`;
      return { type: "image_url", image_url: { url, ...(part.detail && { detail: part.detail }) } };
    }
    case "audio":
      return { type: "input_audio", input_audio: { data: part.base64, format: part.format } };
    case "file":
      // A file id names a file in this server's store, which the upstream does not have.
      if (part.fileId || !part.base64) {
        throw unsupportedParameter(param, "Files can be sent to this model inline (file_data) only.");
      }
      return {
        type: "file",
        file: { file_data: part.base64, ...(part.filename && { filename: part.filename }) },
      };
  }
}
