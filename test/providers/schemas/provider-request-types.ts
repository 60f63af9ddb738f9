/**
 * The request bodies Switchboard sends Anthropic and Gemini, as the providers' official SDKs type
 * them. `npm run schemas:providers` turns each export into the JSON Schema file beside this one
 * (scripts/generate-provider-schemas.mjs); the mock upstreams hold every request to those files.
 * Only types: nothing here runs.
 */
import type { MessageCreateParamsStreaming } from "@anthropic-ai/sdk/resources/messages";
import type {
  Content,
  EmbedContentConfig,
  GenerationConfig,
  SafetySetting,
  Tool,
  ToolConfig,
} from "@google/genai";

/**
 * POST /v1/messages with `stream: true`, which is how Switchboard always asks (Messages API
 * reference, "Create a Message"). The SDK's own type for it, unchanged, from the last SDK release
 * for API version 2023-06-01, the `anthropic-version` Switchboard sends by default (1.x speaks
 * 2026-10-21, whose request has no temperature, top_p or top_k).
 */
export type AnthropicMessagesRequest = MessageCreateParamsStreaming;

/**
 * The body of `models/{model}:streamGenerateContent` (and `:generateContent`): the REST reference's
 * GenerateContentRequest less `model`, which is in the path. @google/genai types the SDK's call
 * (`GenerateContentParameters`: `{ model, contents, config }`, with `config` mixing generation
 * settings, tools and client options such as `httpOptions` and `abortSignal`) and rewrites it into
 * this body in its converters; it exports no type for the body itself. So the body is put together
 * here from the SDK's types for its fields, which are the REST resources' own: Content, Tool,
 * ToolConfig, SafetySetting and GenerationConfig (the REST `generationConfig` object, not the SDK's
 * GenerateContentConfig). Those types serve Vertex AI too, so a few Vertex-only fields (say
 * `Tool.retrieval`) pass that the Gemini API would refuse.
 */
export interface GeminiGenerateContentRequest {
  contents: Content[];
  systemInstruction?: Content;
  tools?: Tool[];
  toolConfig?: ToolConfig;
  safetySettings?: SafetySetting[];
  generationConfig?: GenerationConfig;
  cachedContent?: string;
}

/**
 * The body of `models/{model}:batchEmbedContents`: `{ requests: EmbedContentRequest[] }`. The SDK's
 * EmbedContentParameters is again its call shape; the per-request fields come from its
 * EmbedContentConfig, less the client options and the Vertex-only ones.
 */
export interface GeminiBatchEmbedContentsRequest {
  requests: GeminiEmbedContentRequest[];
}

export interface GeminiEmbedContentRequest {
  /** The model's resource name, `models/{model}`, the same as in the path. */
  model: string;
  content: Content;
  taskType?: string;
  title?: string;
  outputDimensionality?: number;
}

/**
 * The last three fields above are EmbedContentConfig's, written out because the generator cannot
 * read that type (its client options hold an AbortSignal), not even through Pick or `T["field"]`.
 * This fails to compile when they stop being the SDK's.
 */
type EmbedFields = "taskType" | "title" | "outputDimensionality";
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
export type EmbedFieldsAreTheSdks = Holds<
  Same<Pick<GeminiEmbedContentRequest, EmbedFields>, Pick<EmbedContentConfig, EmbedFields>>
>;
