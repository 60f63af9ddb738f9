import { invalidRequest, unsupportedParameter } from "../../../core/errors.js";
import type { ChatMessage, ContentPart, GenerationRequest } from "../../../core/generation.js";
import { type OutputConstraint, type ToolChoice, textOf } from "../../../core/messages.js";
import { toGeminiSchema } from "./response-schema.js";
import { SIGNATURE_VALIDATOR_SKIP, thoughtSignatureOf } from "./thought-signature.js";

/**
 * Our chat request as a Gemini generateContent request. What Gemini has no place for (raw
 * prompts, logit bias, image URLs, which this server never fetches) is refused with a 400 naming
 * the field, never dropped.
 */

/** Thinking budgets for reasoning_effort (Gemini asks for tokens, not levels). */
const THINKING_BUDGET: Readonly<Record<string, number>> = {
  none: 0,
  minimal: 512,
  low: 1024,
  medium: 8192,
  high: 24_576,
};

type Part = Record<string, unknown>;
interface Content {
  role: "user" | "model";
  parts: Part[];
}

export function checkGeminiRequest(req: GenerationRequest): void {
  if (req.input.kind !== "chat") throw invalidRequest("This model serves chat completions only.", "model");
  if (req.sampling.logitBias && req.sampling.logitBias.size > 0) {
    throw unsupportedParameter("logit_bias", "This model has no logit bias.");
  }
  if ((req.sampling.minP ?? 0) > 0) throw unsupportedParameter("min_p", "This model has no min_p.");
  if ((req.sampling.repetitionPenalty ?? 1) !== 1)
    throw unsupportedParameter("repetition_penalty", "This model has no repetition penalty.");
}

export function geminiGenerateBody(req: GenerationRequest): Record<string, unknown> {
  checkGeminiRequest(req);
  const input = req.input as Extract<GenerationRequest["input"], { kind: "chat" }>;
  const system: Part[] = [];
  const contents: Content[] = [];
  /** Tool call id → function name, from the assistant turns read so far. */
  const callNames = new Map<string, string>();
  for (const [i, message] of input.messages.entries()) {
    if (message.role === "system" || message.role === "developer") {
      const text = textOf(message.content);
      if (text) system.push({ text });
      continue;
    }
    appendTurn(contents, toContent(message, i, callNames));
  }
  const body: Record<string, unknown> = { contents };
  if (system.length > 0) body.systemInstruction = { parts: system };
  Object.assign(body, toolFields(req.constraint));
  body.generationConfig = generationConfig(req);
  return body;
}

function generationConfig(req: GenerationRequest): Record<string, unknown> {
  const s = req.sampling;
  const config: Record<string, unknown> = {};
  if (s.temperature !== 1) config.temperature = s.temperature;
  if (s.topP !== 1) config.topP = s.topP;
  if (s.topK) config.topK = s.topK;
  if (req.maxTokens !== undefined) config.maxOutputTokens = req.maxTokens;
  if (req.stop.length > 0) config.stopSequences = req.stop;
  if (req.n > 1) config.candidateCount = req.n;
  if (s.seed !== undefined) config.seed = s.seed;
  if (s.presencePenalty !== 0) config.presencePenalty = s.presencePenalty;
  if (s.frequencyPenalty !== 0) config.frequencyPenalty = s.frequencyPenalty;
  const format = req.constraint?.format;
  if (format) {
    config.responseMimeType = "application/json";
    if (format.value.type === "json_schema") {
      config.responseSchema = toGeminiSchema(
        format.value.schema,
        format.schemaParam ?? `${format.param}.json_schema.schema`,
      );
    }
  }
  const budget = req.reasoningEffort ? THINKING_BUDGET[req.reasoningEffort] : undefined;
  if (budget !== undefined) {
    config.thinkingConfig = { thinkingBudget: budget, ...(budget > 0 && { includeThoughts: true }) };
  }
  return config;
}

function toolFields(constraint: OutputConstraint | undefined): Record<string, unknown> {
  const tools = constraint?.tools;
  if (!tools) return {};
  const functionDeclarations = tools.definitions.map((tool, i) => ({
    name: tool.name,
    ...(tool.description !== undefined && { description: tool.description }),
    ...(tool.parameters !== undefined &&
      hasProperties(tool.parameters) && {
        parameters: toGeminiSchema(tool.parameters, tool.param ?? `${tools.param}[${i}].function.parameters`),
      }),
  }));
  return {
    tools: [{ functionDeclarations }],
    toolConfig: { functionCallingConfig: functionCalling(tools.choice) },
  };
}

/** Gemini refuses an object schema with no properties; a function without parameters says nothing. */
function hasProperties(schema: Readonly<Record<string, unknown>>): boolean {
  const properties = schema.properties;
  return !(
    schema.type === "object" &&
    (!properties || (typeof properties === "object" && Object.keys(properties).length === 0))
  );
}

function functionCalling(choice: ToolChoice): Record<string, unknown> {
  switch (choice.mode) {
    case "none":
      return { mode: "NONE" };
    case "required":
      return { mode: "ANY" };
    case "named":
      return { mode: "ANY", allowedFunctionNames: [choice.name] };
    case "allowed":
      // VALIDATED: text or a call, and a call only to one of the names.
      return { mode: choice.required ? "ANY" : "VALIDATED", allowedFunctionNames: choice.names };
    default:
      return { mode: "AUTO" };
  }
}

/** Gemini wants user and model turns to alternate: consecutive ones (tool results) merge. */
function appendTurn(contents: Content[], turn: Content): void {
  const last = contents.at(-1);
  if (last && last.role === turn.role) last.parts.push(...turn.parts);
  else contents.push(turn);
}

function toContent(
  message: Exclude<ChatMessage, { role: "system" | "developer" }>,
  index: number,
  callNames: Map<string, string>,
): Content {
  if (message.role === "tool") {
    const name = callNames.get(message.toolCallId);
    if (name === undefined) {
      throw invalidRequest(
        `messages[${index}].tool_call_id does not match a tool call of an earlier assistant message.`,
        `messages[${index}].tool_call_id`,
      );
    }
    return { role: "user", parts: [{ functionResponse: { name, response: toolResponse(message.content) } }] };
  }
  if (message.role === "assistant") {
    const parts: Part[] = [];
    const text = textOf(message.content);
    if (text) parts.push({ text });
    const calls = message.toolCalls ?? [];
    // Gemini wants each call's thought signature back on its part; a turn whose calls carry none
    // (made by another model, or their ids rewritten) gets Google's stand-in on its first call,
    // which Gemini 3 requires there.
    const signed = calls.some((call) => thoughtSignatureOf(call.id) !== undefined);
    for (const [j, call] of calls.entries()) {
      callNames.set(call.id, call.name);
      const signature =
        thoughtSignatureOf(call.id) ?? (!signed && j === 0 ? SIGNATURE_VALIDATOR_SKIP : undefined);
      parts.push({
        functionCall: { name: call.name, args: parseArguments(call.arguments) },
        ...(signature !== undefined && { thoughtSignature: signature }),
      });
    }
    // An assistant turn with nothing Gemini can carry (a refusal only) still keeps its place.
    if (parts.length === 0) parts.push({ text: message.refusal ?? "" });
    return { role: "model", parts };
  }
  return {
    role: "user",
    parts: message.content.map((part, j) => userPart(part, `messages[${index}].content[${j}]`)),
  };
}

function userPart(part: ContentPart, param: string): Part {
  switch (part.type) {
    case "text":
      return { text: part.text };
    case "image":
      if (part.source.kind === "url") {
        throw invalidRequest(
          `${param}: this model takes images inline only (a data: URL); this server does not fetch image URLs.`,
          param,
          "unsupported_content",
        );
      }
      return { inlineData: { mimeType: part.source.mediaType, data: part.source.base64 } };
    case "audio":
      return { inlineData: { mimeType: `audio/${part.format}`, data: part.base64 } };
    default:
      throw invalidRequest(
        `${param}: this model takes text, images and audio only.`,
        param,
        "unsupported_content",
      );
  }
}

/** A tool's result as Gemini's response object: a JSON object as it is, anything else as `output`. */
function toolResponse(content: readonly ContentPart[]): Record<string, unknown> {
  const text = textOf(content);
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Plain text.
  }
  return { output: text };
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
