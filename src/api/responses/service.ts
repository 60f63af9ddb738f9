import { invalidRequest, unsupportedParameter } from "../../core/errors.js";
import type { ChatMessage, GenerationRequest } from "../../core/generation.js";
import { randomId } from "../../core/ids.js";
import type { ContentPart, OutputConstraint, ToolChoice, ToolDefinition } from "../../core/messages.js";
import { assertUniqueToolNames, imageSource, resolveToolChoice } from "../common-fields.js";
import { toSampling } from "../sampling.js";
import type { CreateResponseRequest, WireInputItem } from "./schema.js";

/**
 * An input item as it is stored and listed (`GET …/input_items`): every item has an id and a
 * type, and message content is always a list of parts.
 */
export type StoredItem = Record<string, unknown> & { id: string; type: string };

const INCLUDABLE = new Set(["message.output_text.logprobs", "file_search_call.results"]);

/** Refuses, with a 400 naming the field, what this server does not do with a response. */
export function rejectUnsupported(req: CreateResponseRequest): void {
  const refuse = (field: string, why: string): never => {
    throw unsupportedParameter(field, why);
  };
  if (req.conversation != null && req.previous_response_id != null) {
    throw invalidRequest("Give conversation or previous_response_id, not both.", "conversation");
  }
  if (req.max_tool_calls != null)
    refuse("max_tool_calls", "max_tool_calls is not supported by this server yet.");
  if (req.prompt != null) refuse("prompt", "Stored prompt templates are not supported by this server.");
  if (req.prompt_cache_retention != null && req.prompt_cache_retention !== "in_memory") {
    refuse("prompt_cache_retention", "Only in_memory prompt cache retention is available.");
  }
  if (req.text?.verbosity != null) refuse("text.verbosity", "Local models have no verbosity setting.");
  const summary = req.reasoning?.summary;
  if (summary != null && summary !== "auto") {
    refuse("reasoning.summary", "Reasoning summaries are not written by this server; 'auto' returns none.");
  }
  if (req.reasoning?.generate_summary != null) refuse("reasoning.generate_summary", "Use reasoning.summary.");
  (req.include ?? []).forEach((value, i) => {
    if (!INCLUDABLE.has(value)) refuse(`include[${i}]`, `'${value}' cannot be included by this server.`);
  });
}

/** The request's input as stored items (ids given to those without). */
export function toStoredItems(input: CreateResponseRequest["input"]): StoredItem[] {
  if (input === undefined) return [];
  if (typeof input === "string") {
    return [messageItem("user", [{ type: "input_text", text: input }])];
  }
  return input.map((item, i) => toStoredItem(item, i));
}

/** Items added to a conversation: each gets an id of its own there, whatever it carried. */
export function toConversationItems(items: readonly WireInputItem[]): StoredItem[] {
  return withFreshIds(items.map((item, i) => toStoredItem(item, i)));
}

export function withFreshIds(items: readonly StoredItem[]): StoredItem[] {
  return items.map((item) => ({ ...item, id: `${idPrefix(item.type)}_${randomId()}` }));
}

function idPrefix(type: string): string {
  return { function_call: "fc", function_call_output: "fco", reasoning: "rs" }[type] ?? "msg";
}

function messageItem(role: string, content: unknown[], id?: string): StoredItem {
  return { type: "message", id: id ?? `msg_${randomId()}`, role, content, status: "completed" };
}

function toStoredItem(item: WireInputItem, index: number): StoredItem {
  switch (item.type) {
    case "function_call":
      return { ...item, id: item.id ?? `fc_${randomId()}`, status: item.status ?? "completed" };
    case "function_call_output":
      return { ...item, id: item.id ?? `fco_${randomId()}`, status: item.status ?? "completed" };
    case "reasoning":
      return { ...item };
    case "item_reference":
      throw unsupportedParameter(`input[${index}]`, "Item references are not supported by this server yet.");
    default: {
      const content =
        typeof item.content === "string"
          ? [{ type: item.role === "assistant" ? "output_text" : "input_text", text: item.content }]
          : item.content;
      return messageItem(item.role, content, item.id);
    }
  }
}

/**
 * Items (the chain's and this request's, in order) as a conversation. Calls the model made join
 * the assistant turn they belong to; reasoning passed back goes with the assistant turn after it.
 */
export function toChatMessages(
  items: readonly StoredItem[],
  instructions: string | null | undefined,
): ChatMessage[] {
  const messages: ChatMessage[] = [];
  if (instructions) messages.push({ role: "developer", content: [{ type: "text", text: instructions }] });
  let reasoning: string | undefined;
  const assistant = (): Extract<ChatMessage, { role: "assistant" }> => {
    const last = messages.at(-1);
    if (last?.role === "assistant" && reasoning === undefined) return last;
    const message: Extract<ChatMessage, { role: "assistant" }> = { role: "assistant", content: [] };
    if (reasoning) message.reasoning = reasoning;
    reasoning = undefined;
    messages.push(message);
    return message;
  };
  items.forEach((item, i) => {
    switch (item.type) {
      case "reasoning":
        reasoning = reasoningText(item);
        return;
      case "function_call": {
        const message = assistant();
        const calls = message.toolCalls ?? [];
        calls.push({ id: String(item.call_id), name: String(item.name), arguments: String(item.arguments) });
        message.toolCalls = calls;
        return;
      }
      case "function_call_output":
        messages.push({ role: "tool", toolCallId: String(item.call_id), content: outputParts(item.output) });
        return;
      default: {
        const role = item.role as "user" | "system" | "developer" | "assistant";
        const parts = contentParts(item.content as Record<string, unknown>[], `input[${i}].content`);
        if (role === "assistant") {
          const message = assistant();
          for (const part of parts) message.content.push(part);
          const refusal = (item.content as Record<string, unknown>[]).find((p) => p.type === "refusal");
          if (refusal) message.refusal = String(refusal.refusal);
        } else {
          messages.push({ role, content: parts });
        }
      }
    }
  });
  return messages;
}

function reasoningText(item: StoredItem): string {
  const content = (item.content as { text: string }[] | null | undefined) ?? [];
  const summary = (item.summary as { text: string }[] | undefined) ?? [];
  return (content.length > 0 ? content : summary).map((part) => part.text).join("\n");
}

function outputParts(output: unknown): ContentPart[] {
  if (typeof output === "string") return output ? [{ type: "text", text: output }] : [];
  return contentParts(output as Record<string, unknown>[], "input");
}

function contentParts(parts: readonly Record<string, unknown>[], param: string): ContentPart[] {
  return parts.flatMap((part, j): ContentPart[] => {
    switch (part.type) {
      case "input_text":
      case "output_text":
        return [{ type: "text", text: String(part.text) }];
      case "input_image": {
        const url = typeof part.image_url === "string" ? part.image_url : undefined;
        if (!url)
          throw unsupportedParameter(`${param}[${j}].file_id`, "Images by file id are not supported yet.");
        return [{ type: "image", source: imageSource(url, `${param}[${j}].image_url`) }];
      }
      case "input_file":
        return [
          {
            type: "file",
            ...(typeof part.file_id === "string" ? { fileId: part.file_id } : {}),
            ...(typeof part.filename === "string" ? { filename: part.filename } : {}),
            ...(typeof part.file_data === "string" ? { base64: part.file_data } : {}),
          },
        ];
      default:
        return [];
    }
  });
}

/** Wire request + the conversation so far → the internal request. */
export function toGenerationRequest(
  req: CreateResponseRequest,
  model: string,
  messages: ChatMessage[],
): GenerationRequest {
  if (messages.length === 0) throw invalidRequest("input must hold at least one item.", "input");
  const logprobs = req.top_logprobs != null || (req.include ?? []).includes("message.output_text.logprobs");
  return {
    model,
    input: { kind: "chat", messages },
    sampling: toSampling({ temperature: req.temperature, top_p: req.top_p }),
    maxTokens: req.max_output_tokens ?? undefined,
    stop: [],
    n: 1,
    ...(logprobs ? { logprobs: { top: req.top_logprobs ?? 0 } } : {}),
    constraint: toConstraint(req),
    ...(req.reasoning?.effort ? { reasoningEffort: req.reasoning.effort } : {}),
  };
}

function toConstraint(req: CreateResponseRequest): OutputConstraint | undefined {
  const constraint: OutputConstraint = {};
  // Function tools are the model's; file_search runs before it (file-search.ts). Indexes stay the request's.
  const tools = (req.tools ?? []).flatMap((tool, i) => (tool.type === "function" ? [{ tool, i }] : []));
  assertUniqueToolNames(
    tools.map(({ tool }) => tool.name),
    (n) => `tools[${tools[n]?.i ?? n}].name`,
  );
  const definitions = tools.map(({ tool, i }): ToolDefinition => {
    return {
      name: tool.name,
      ...(tool.description ? { description: tool.description } : {}),
      ...(tool.parameters ? { parameters: tool.parameters } : {}),
      // The Responses API makes function tools strict unless told otherwise.
      strict: tool.strict ?? true,
      param: `tools[${i}].parameters`,
    };
  });
  const choice = toToolChoice(req.tool_choice, definitions);
  if (definitions.length > 0) {
    constraint.tools = { definitions, choice, parallel: req.parallel_tool_calls ?? true, param: "tools" };
  }
  const format = req.text?.format;
  if (format && format.type !== "text") {
    constraint.format = {
      param: "text.format",
      schemaParam: "text.format.schema",
      value:
        format.type === "json_object"
          ? { type: "json_object" }
          : { type: "json_schema", name: format.name, schema: format.schema, strict: format.strict ?? false },
    };
  }
  return constraint.tools || constraint.format ? constraint : undefined;
}

function toToolChoice(
  choice: CreateResponseRequest["tool_choice"],
  tools: readonly ToolDefinition[],
): ToolChoice {
  const names = tools.map((tool) => tool.name);
  if (choice == null || typeof choice === "string") return resolveToolChoice(choice, names);
  if (choice.type === "function")
    return resolveToolChoice({ named: choice.name, param: "tool_choice.name" }, names);
  return resolveToolChoice(
    {
      allowed: choice.tools.map((tool, i) => ({ name: tool.name, param: `tool_choice.tools[${i}].name` })),
      required: choice.mode === "required",
    },
    names,
  );
}

/** Every function_call_output answers a call made earlier in the conversation. */
export function checkCallOutputs(items: readonly StoredItem[], firstNew: number): void {
  const calls = new Set<string>();
  items.forEach((item, i) => {
    if (item.type === "function_call") calls.add(String(item.call_id));
    if (item.type === "function_call_output" && !calls.has(String(item.call_id))) {
      throw invalidRequest(
        `No tool call found for function_call_output with call_id '${String(item.call_id)}'.`,
        `input[${i - firstNew}].call_id`,
      );
    }
  });
}
