import { invalidRequest, unsupportedParameter } from "../../../core/errors.js";
import type { ChatMessage, ContentPart, GenerationRequest } from "../../../core/generation.js";
import type { JsonSchema, ToolChoice } from "../../../core/messages.js";
import { type SignedThinking, thinkingOf, upstreamCallId } from "./thinking-in-call-id.js";

/**
 * Our chat request as an Anthropic Messages API request. What the Messages API has no place for
 * (n > 1, penalties, seed, logit bias) is refused with a 400 naming the field, never dropped.
 */

/** The image types the Messages API takes (its Base64ImageSource.media_type). */
const IMAGE_MEDIA_TYPES = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);

/** Thinking budgets for reasoning_effort (Anthropic asks for tokens, not levels). */
const THINKING_BUDGET: Readonly<Record<string, number>> = { low: 1024, medium: 4096, high: 16_384 };
/** The smallest thinking budget the Messages API takes; the budget must also stay below max_tokens. */
const MIN_THINKING_BUDGET = 1024;

type Block = Record<string, unknown>;
interface WireMessage {
  role: "user" | "assistant";
  content: Block[];
}

export function checkAnthropicRequest(req: GenerationRequest): void {
  if (req.input.kind !== "chat") throw invalidRequest("This model serves chat completions only.", "model");
  if (req.n > 1) throw unsupportedParameter("n", "This model returns one choice per request (n must be 1).");
  const s = req.sampling;
  if (s.temperature > 1) throw invalidRequest("temperature must be at most 1 for this model.", "temperature");
  if (s.presencePenalty !== 0)
    throw unsupportedParameter("presence_penalty", "This model has no presence penalty.");
  if (s.frequencyPenalty !== 0)
    throw unsupportedParameter("frequency_penalty", "This model has no frequency penalty.");
  if (s.seed !== undefined) throw unsupportedParameter("seed", "This model does not take a seed.");
  if ((s.minP ?? 0) > 0) throw unsupportedParameter("min_p", "This model has no min_p.");
  if ((s.repetitionPenalty ?? 1) !== 1)
    throw unsupportedParameter("repetition_penalty", "This model has no repetition penalty.");
  if (s.logitBias && s.logitBias.size > 0)
    throw unsupportedParameter("logit_bias", "This model has no logit bias.");
  const tools = req.constraint?.tools;
  if (tools?.choice.mode === "allowed") {
    throw unsupportedParameter("tool_choice", "allowed_tools is not available for this model.");
  }
  const thinking = req.reasoningEffort !== undefined && THINKING_BUDGET[req.reasoningEffort] !== undefined;
  // Anthropic refuses extended thinking with a tool_choice that forces a tool call.
  if (thinking && (tools?.choice.mode === "required" || tools?.choice.mode === "named")) {
    throw invalidRequest(
      "This model cannot think (reasoning_effort) while tool_choice forces a tool call: use tool_choice auto or none, or leave out reasoning_effort.",
      "tool_choice",
    );
  }
  const format = req.constraint?.format;
  if (format && tools) {
    throw unsupportedParameter(
      format.param,
      "This model answers a JSON response format through a tool call of its own, so it cannot take tools in the same request.",
    );
  }
  if (format && thinking) {
    throw invalidRequest(
      `This model answers a JSON response format through a forced tool call, which its extended thinking cannot be combined with: leave out reasoning_effort or ${format.param}.`,
      "reasoning_effort",
    );
  }
}

/**
 * The tool a JSON response format is asked for through (Anthropic's way to structured output: one
 * tool whose input schema is the format's schema, its call forced); undefined without a format.
 */
export function formatToolName(req: GenerationRequest): string | undefined {
  const format = req.constraint?.format?.value;
  if (!format) return undefined;
  return format.type === "json_schema" ? format.name : "json_object";
}

export function anthropicMessagesBody(
  req: GenerationRequest,
  upstreamModel: string,
  defaultMaxTokens: number,
) {
  checkAnthropicRequest(req);
  const input = req.input as Extract<GenerationRequest["input"], { kind: "chat" }>;
  const system: Block[] = [];
  for (const message of input.messages) {
    if (message.role === "system" || message.role === "developer") {
      // Anthropic refuses empty text blocks; an empty one says nothing anyway.
      for (const part of message.content)
        if (part.type === "text" && part.text !== "") system.push({ type: "text", text: part.text });
    }
  }
  const maxTokens = req.maxTokens ?? defaultMaxTokens;
  const budget = req.reasoningEffort ? THINKING_BUDGET[req.reasoningEffort] : undefined;
  let messages = wireMessages(input.messages, budget !== undefined);
  // With thinking on, Anthropic refuses a last assistant turn whose tool calls come without the
  // signed thinking they were made with (calls made by another model, ids rewritten or too large
  // to carry it). Such a request goes without thinking instead, so the caller's tool loop still
  // completes; thinking comes back once the conversation's last assistant turn is not of that kind.
  const thinking =
    budget !== undefined && !lacksSignedThinking(messages.findLast((m) => m.role === "assistant"));
  if (budget !== undefined && !thinking) messages = wireMessages(input.messages, false);
  const body: Record<string, unknown> = {
    model: upstreamModel,
    max_tokens: maxTokens,
    messages,
    stream: true,
  };
  if (system.length > 0) body.system = system;
  if (req.sampling.temperature !== 1) body.temperature = req.sampling.temperature;
  if (req.sampling.topP !== 1) body.top_p = req.sampling.topP;
  if (req.sampling.topK) body.top_k = req.sampling.topK;
  if (req.stop.length > 0) body.stop_sequences = req.stop;
  if (budget !== undefined) {
    // Thinking spends max_tokens too (as reasoning tokens count against OpenAI's completion cap),
    // and its budget must be at least 1024 and below max_tokens. A cap that leaves no room is
    // refused rather than raised (the caller's cap and the tokens reserved against its limits
    // would no longer hold) or silently run without thinking.
    if (maxTokens <= MIN_THINKING_BUDGET) {
      throw invalidRequest(
        `A reasoning effort needs a token cap (max_tokens, max_completion_tokens, or max_output_tokens in the Responses API) above ${MIN_THINKING_BUDGET} for this model: its extended thinking takes at least ${MIN_THINKING_BUDGET} of them; got ${maxTokens}.`,
        "reasoning_effort",
      );
    }
    if (thinking) body.thinking = { type: "enabled", budget_tokens: Math.min(budget, maxTokens - 1) };
  }
  const tools = req.constraint?.tools;
  const format = req.constraint?.format;
  if (format) {
    const name = formatToolName(req) as string;
    const schema =
      format.value.type === "json_schema"
        ? inputSchema(format.value.schema, format.schemaParam ?? `${format.param}.json_schema.schema`)
        : { type: "object" };
    body.tools = [
      {
        name,
        description: "Give your answer as this tool's input, which must match its schema.",
        input_schema: schema,
      },
    ];
    body.tool_choice = { type: "tool", name, disable_parallel_tool_use: true };
  }
  if (tools) {
    body.tools = tools.definitions.map((tool, i) => ({
      name: tool.name,
      ...(tool.description !== undefined && { description: tool.description }),
      input_schema: inputSchema(tool.parameters, tool.param ?? `${tools.param}[${i}].function.parameters`),
    }));
    body.tool_choice = {
      ...toolChoice(tools.choice),
      ...(!tools.parallel && tools.choice.mode !== "none" && { disable_parallel_tool_use: true }),
    };
  }
  return body;
}

/**
 * A function's parameters as Anthropic's input_schema, which must say `type: "object"`: JSON
 * Schema lets parameters leave it implied (`{"properties": …}`), and a function may have none.
 */
function inputSchema(parameters: JsonSchema | undefined, param: string): Block {
  if (!parameters) return { type: "object", properties: {} };
  if (parameters.type !== undefined && parameters.type !== "object") {
    throw invalidRequest(`${param} must be an object schema (type "object") for this model.`, param);
  }
  return { type: "object", ...parameters };
}

function toolChoice(choice: ToolChoice): Block {
  switch (choice.mode) {
    case "required":
      return { type: "any" };
    case "named":
      return { type: "tool", name: choice.name };
    case "none":
      return { type: "none" };
    default:
      return { type: "auto" };
  }
}

/** The conversation's turns; `thinking`: the signed thinking tool-call ids carry goes back. */
function wireMessages(chat: readonly ChatMessage[], thinking: boolean): WireMessage[] {
  const messages: WireMessage[] = [];
  for (const [i, message] of chat.entries()) {
    if (message.role === "system" || message.role === "developer") continue;
    const turn = toTurn(message, i, thinking);
    if (turn) appendTurn(messages, turn);
  }
  return messages;
}

/** An assistant turn with tool calls that does not open with signed thinking. */
function lacksSignedThinking(turn: WireMessage | undefined): boolean {
  if (!turn?.content.some((block) => block.type === "tool_use")) return false;
  const first = turn.content[0]?.type;
  return first !== "thinking" && first !== "redacted_thinking";
}

/** Anthropic wants user and assistant turns to alternate: consecutive ones (tool results) merge. */
function appendTurn(messages: WireMessage[], turn: WireMessage): void {
  const last = messages.at(-1);
  if (last && last.role === turn.role) last.content.push(...turn.content);
  else messages.push(turn);
}

/**
 * One message as a turn; undefined for a message that said nothing (a user message of empty text,
 * an assistant message with no text, refusal or tool call). Anthropic refuses a turn with no content blocks, and an empty assistant turn
 * carries nothing the model could read: leaving it out keeps the conversation's meaning, and the
 * user turns around it merge into one.
 */
function toTurn(
  message: Exclude<ChatMessage, { role: "system" | "developer" }>,
  index: number,
  thinking: boolean,
): WireMessage | undefined {
  if (message.role === "tool") {
    return {
      role: "user",
      content: [
        {
          type: "tool_result",
          tool_use_id: upstreamCallId(message.toolCallId),
          content: textOf(message.content),
        },
      ],
    };
  }
  if (message.role === "assistant") {
    const content: Block[] = [];
    const calls = message.toolCalls ?? [];
    // Each call's id carries the signed thinking that came before it: the first call's opens the turn.
    const signedBefore = (j: number): Block[] => {
      const call = calls[j];
      return thinking && call ? thinkingOf(call.id).map(thinkingBlock) : [];
    };
    content.push(...signedBefore(0));
    // A refusal is what the model said on that turn, when it said nothing else.
    const text = textOf(message.content) || message.refusal;
    if (text) content.push({ type: "text", text });
    for (const [j, call] of calls.entries()) {
      if (j > 0) content.push(...signedBefore(j));
      content.push({
        type: "tool_use",
        id: upstreamCallId(call.id),
        name: call.name,
        input: parseArguments(call.arguments),
      });
    }
    return content.length > 0 ? { role: "assistant", content } : undefined;
  }
  // Anthropic refuses empty text blocks (OpenAI takes them): an empty text says nothing and is left
  // out, and a user message left with nothing goes the way of an empty assistant turn.
  const content: Block[] = [];
  for (const [j, part] of message.content.entries()) {
    if (part.type === "text" && part.text === "") continue;
    content.push(userBlock(part, `messages[${index}].content[${j}]`));
  }
  return content.length > 0 ? { role: "user", content } : undefined;
}

function thinkingBlock(block: SignedThinking): Block {
  return block.type === "thinking"
    ? { type: "thinking", thinking: block.thinking, signature: block.signature }
    : { type: "redacted_thinking", data: block.data };
}

function userBlock(part: ContentPart, param: string): Block {
  switch (part.type) {
    case "text":
      return { type: "text", text: part.text };
    case "image":
      // A URL goes to Anthropic as it came; this server never fetches it.
      if (part.source.kind === "url") return { type: "image", source: { type: "url", url: part.source.url } };
      if (!IMAGE_MEDIA_TYPES.has(part.source.mediaType)) {
        throw invalidRequest(
          `${param}: this model takes JPEG, PNG, GIF and WebP images only.`,
          param,
          "unsupported_content",
        );
      }
      return {
        type: "image",
        source: { type: "base64", media_type: part.source.mediaType, data: part.source.base64 },
      };
    default:
      throw invalidRequest("This model takes text and images only.", "messages", "unsupported_content");
  }
}

function textOf(content: readonly ContentPart[]): string {
  let text = "";
  for (const part of content) if (part.type === "text") text += part.text;
  return text;
}

/** Arguments a model produced earlier; a call whose arguments are not an object is passed as {}. */
function parseArguments(text: string): unknown {
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}
