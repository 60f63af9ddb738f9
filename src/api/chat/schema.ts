import { z } from "zod";
import { functionNameSchema, metadataSchema, toolCallIdSchema } from "../common-fields.js";
import { samplingExtensions } from "../sampling.js";

/**
 * The wire shape of POST /v1/chat/completions. Every documented field is either honoured or
 * refused with a 400 naming it; unknown fields are refused too, so nothing is silently ignored.
 */

const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });
const imagePart = z.strictObject({
  type: z.literal("image_url"),
  image_url: z.strictObject({ url: z.string().min(1), detail: z.enum(["auto", "low", "high"]).optional() }),
});
const audioPart = z.strictObject({
  type: z.literal("input_audio"),
  input_audio: z.strictObject({ data: z.string(), format: z.enum(["wav", "mp3"]) }),
});
const filePart = z.strictObject({
  type: z.literal("file"),
  file: z.strictObject({
    file_id: z.string().min(1).optional(),
    filename: z.string().max(1024).optional(),
    file_data: z.string().optional(),
  }),
});
const refusalPart = z.strictObject({ type: z.literal("refusal"), refusal: z.string() });

const userContent = z.union([
  z.string(),
  z.array(z.discriminatedUnion("type", [textPart, imagePart, audioPart, filePart])).min(1),
]);
const textOnlyContent = z.union([z.string(), z.array(textPart).min(1)]);
const name = z.string().min(1).max(256).optional();

const functionName = functionNameSchema;

const toolCall = z.strictObject({
  id: toolCallIdSchema,
  type: z.literal("function"),
  function: z.strictObject({ name: functionName, arguments: z.string() }),
});
export type WireToolCall = z.infer<typeof toolCall>;

const jsonSchemaObject = z.record(z.string(), z.unknown());

const tool = z.strictObject({
  type: z.literal("function"),
  function: z.strictObject({
    name: functionName,
    description: z.string().max(65_536).optional(),
    parameters: jsonSchemaObject.optional(),
    strict: z.boolean().nullish(),
  }),
});

const namedFunction = z.strictObject({
  type: z.literal("function"),
  function: z.strictObject({ name: functionName }),
});

const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  namedFunction,
  z.strictObject({
    type: z.literal("allowed_tools"),
    allowed_tools: z.strictObject({
      mode: z.enum(["auto", "required"]),
      tools: z.array(namedFunction).min(1).max(128),
    }),
  }),
]);

const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.strictObject({
      name: functionName,
      description: z.string().optional(),
      schema: jsonSchemaObject.optional(),
      strict: z.boolean().nullish(),
    }),
  }),
]);

const systemMessage = z.strictObject({ role: z.literal("system"), content: textOnlyContent, name });
const developerMessage = z.strictObject({ role: z.literal("developer"), content: textOnlyContent, name });
const userMessage = z.strictObject({ role: z.literal("user"), content: userContent, name });
const assistantMessage = z.strictObject({
  role: z.literal("assistant"),
  content: z
    .union([z.string(), z.array(z.discriminatedUnion("type", [textPart, refusalPart])), z.null()])
    .optional(),
  refusal: z.string().nullable().optional(),
  name,
  tool_calls: z.array(toolCall).optional(),
  function_call: z.strictObject({ name: z.string(), arguments: z.string() }).nullish(),
  audio: z.unknown().optional(),
  // A response's message sent back as it came (the SDKs' documented pattern) carries these too:
  // annotations are ignored, reasoning goes back to templates that render it.
  annotations: z.array(z.unknown()).max(1024).optional(),
  reasoning_content: z.string().nullish(),
});
const toolMessage = z.strictObject({
  role: z.literal("tool"),
  content: textOnlyContent,
  tool_call_id: toolCallIdSchema,
});
const functionMessage = z.strictObject({
  role: z.literal("function"),
  content: z.string().nullable(),
  name: z.string(),
});

export const chatMessageSchema = z.discriminatedUnion("role", [
  systemMessage,
  developerMessage,
  userMessage,
  assistantMessage,
  toolMessage,
  functionMessage,
]);
export type WireChatMessage = z.infer<typeof chatMessageSchema>;

const metadata = metadataSchema;

export const chatRequestSchema = z.strictObject({
  model: z.string().min(1).max(256),
  messages: z.array(chatMessageSchema).min(1, "messages must hold at least one message"),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  ...samplingExtensions,
  n: z.number().int().min(1).max(128).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4, "at most 4 stop sequences")]).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, "keys are token ids"), z.number().min(-100).max(100))
    .nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z
    .strictObject({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() })
    .nullish(),
  user: z.string().max(512).optional(),
  safety_identifier: z.string().max(512).optional(),
  prompt_cache_key: z.string().max(1024).optional(),
  metadata: metadata.nullish(),
  store: z.boolean().nullish(),
  service_tier: z.enum(["auto", "default", "flex", "scale", "priority"]).nullish(),
  modalities: z.array(z.enum(["text", "audio"])).nullish(),
  tools: z.array(tool).max(128, "at most 128 tools").nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: responseFormat.nullish(),
  // Fields this server refuses with a reason (see service.ts), typed loosely so the reason wins.
  functions: z.unknown().optional(),
  function_call: z.unknown().optional(),
  audio: z.unknown().optional(),
  prediction: z.unknown().optional(),
  reasoning_effort: z.enum(["none", "minimal", "low", "medium", "high"]).nullish(),
  verbosity: z.unknown().optional(),
  web_search_options: z.unknown().optional(),
  moderation: z.unknown().optional(),
  prompt_cache_options: z.unknown().optional(),
  prompt_cache_retention: z.unknown().optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
