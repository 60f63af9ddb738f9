import { z } from "zod";
import { functionNameSchema, metadataSchema, toolCallIdSchema } from "../common-fields.js";
import { fileSearchToolSchema } from "../vector-stores/schema.js";

/**
 * The wire shape of POST /v1/responses. Every documented field is honoured or refused with a 400
 * naming it; unknown fields are refused too.
 */

const functionName = functionNameSchema;
const itemId = z.string().min(1).max(256);
const status = z.enum(["in_progress", "completed", "incomplete"]);

const inputText = z.strictObject({ type: z.literal("input_text"), text: z.string() });
const inputImage = z.strictObject({
  type: z.literal("input_image"),
  image_url: z.string().min(1).nullish(),
  file_id: z.string().min(1).nullish(),
  detail: z.enum(["auto", "low", "high"]).optional(),
});
const inputFile = z.strictObject({
  type: z.literal("input_file"),
  file_id: z.string().min(1).nullish(),
  filename: z.string().max(1024).optional(),
  file_data: z.string().optional(),
  file_url: z.string().optional(),
});
const outputText = z.strictObject({
  type: z.literal("output_text"),
  text: z.string(),
  annotations: z.array(z.unknown()).max(1024).optional(),
  logprobs: z.array(z.unknown()).optional(),
});
const refusal = z.strictObject({ type: z.literal("refusal"), refusal: z.string() });

const inputContent = z.union([
  z.string(),
  z.array(z.discriminatedUnion("type", [inputText, inputImage, inputFile])).min(1),
]);

/** A message in the input: the caller's turns, or an assistant message passed back. */
const inputMessage = z.strictObject({
  type: z.literal("message").optional(),
  id: itemId.optional(),
  role: z.enum(["user", "system", "developer"]),
  content: inputContent,
  status: status.optional(),
});
const assistantMessage = z.strictObject({
  type: z.literal("message").optional(),
  id: itemId.optional(),
  role: z.literal("assistant"),
  content: z.union([z.string(), z.array(z.discriminatedUnion("type", [outputText, refusal])).min(1)]),
  status: status.optional(),
  phase: z.unknown().optional(),
});
const functionCall = z.strictObject({
  type: z.literal("function_call"),
  id: itemId.optional(),
  call_id: toolCallIdSchema,
  name: functionName,
  arguments: z.string(),
  status: status.optional(),
});
const functionCallOutput = z.strictObject({
  type: z.literal("function_call_output"),
  id: itemId.nullish(),
  call_id: toolCallIdSchema,
  output: z.union([z.string(), z.array(z.discriminatedUnion("type", [inputText, inputImage, inputFile]))]),
  status: status.nullish(),
});
const reasoning = z.strictObject({
  type: z.literal("reasoning"),
  id: itemId,
  summary: z.array(z.strictObject({ type: z.literal("summary_text"), text: z.string() })),
  content: z.array(z.strictObject({ type: z.literal("reasoning_text"), text: z.string() })).nullish(),
  encrypted_content: z.string().nullish(),
  status: status.optional(),
});
const itemReference = z.strictObject({ type: z.literal("item_reference"), id: itemId });

/** Messages may leave out `type`, so the union is tried in turn rather than by discriminator. */
export const inputItemSchema = z.union([
  inputMessage,
  assistantMessage,
  functionCall,
  functionCallOutput,
  reasoning,
  itemReference,
]);
export type WireInputItem = z.infer<typeof inputItemSchema>;

const functionTool = z.strictObject({
  type: z.literal("function"),
  name: functionName,
  description: z.string().max(65_536).nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});

const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.strictObject({ type: z.literal("function"), name: functionName }),
  z.strictObject({
    type: z.literal("allowed_tools"),
    mode: z.enum(["auto", "required"]),
    tools: z
      .array(z.strictObject({ type: z.literal("function"), name: functionName }))
      .min(1)
      .max(128),
  }),
]);

const textFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    name: functionName,
    description: z.string().optional(),
    schema: z.record(z.string(), z.unknown()),
    strict: z.boolean().nullish(),
  }),
]);

const metadata = metadataSchema;

export const createResponseSchema = z.strictObject({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(inputItemSchema).max(4096)]).optional(),
  instructions: z.string().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_output_tokens: z.number().int().min(16).nullish(),
  tools: z
    .array(z.union([functionTool, fileSearchToolSchema]))
    .max(128, "at most 128 tools")
    .refine(
      (tools) => tools.filter((t) => t.type === "file_search").length <= 1,
      "at most one file_search tool",
    )
    .optional(),
  tool_choice: toolChoice.optional(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z
    .strictObject({ format: textFormat.optional(), verbosity: z.enum(["low", "medium", "high"]).nullish() })
    .optional(),
  reasoning: z
    .strictObject({
      effort: z.enum(["none", "minimal", "low", "medium", "high"]).nullish(),
      summary: z.enum(["auto", "concise", "detailed"]).nullish(),
      generate_summary: z.unknown().optional(),
    })
    .nullish(),
  metadata: metadata.nullish(),
  user: z.string().max(512).optional(),
  safety_identifier: z.string().max(512).optional(),
  prompt_cache_key: z.string().max(1024).optional(),
  store: z.boolean().nullish(),
  previous_response_id: z.string().min(1).max(256).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_obfuscation: z.boolean().optional() }).nullish(),
  include: z.array(z.string()).nullish(),
  truncation: z.enum(["auto", "disabled"]).nullish(),
  service_tier: z.enum(["auto", "default", "flex", "scale", "priority"]).nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  // Fields this server refuses with a reason (see service.ts), typed loosely so the reason wins.
  background: z.boolean().nullish(),
  conversation: z
    .union([z.string().min(1).max(256), z.strictObject({ id: z.string().min(1).max(256) })])
    .nullish(),
  max_tool_calls: z.unknown().optional(),
  prompt: z.unknown().optional(),
  prompt_cache_retention: z.unknown().optional(),
});

export type CreateResponseRequest = z.infer<typeof createResponseSchema>;

export const inputItemsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).optional(),
  order: z.enum(["asc", "desc"]).optional(),
  after: z.string().min(1).max(256).optional(),
  include: z.union([z.string(), z.array(z.string())]).optional(),
});
