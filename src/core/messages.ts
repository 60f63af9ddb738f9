/**
 * Conversations, tools and output constraints as every backend sees them, whatever API they came
 * in through (chat completions, completions, responses, assistants, batches).
 */

export type Role = "system" | "developer" | "user" | "assistant" | "tool";

/** An image by address or inline; fetching a URL is the backend's (SSRF-guarded) business. */
export type ImageSource = { kind: "url"; url: string } | { kind: "data"; mediaType: string; base64: string };

export type ContentPart =
  | { type: "text"; text: string }
  | { type: "image"; source: ImageSource; detail?: "auto" | "low" | "high" }
  /** A file already uploaded (`fileId`) or sent inline. */
  | { type: "file"; fileId?: string; filename?: string; base64?: string }
  /** Audio sent inline for the model to hear. */
  | { type: "audio"; format: string; base64: string };

/** A call the model made, as it was returned (the arguments are the model's JSON text). */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export type ChatMessage =
  | { role: "system" | "developer" | "user"; content: ContentPart[]; name?: string }
  | {
      role: "assistant";
      content: ContentPart[];
      name?: string;
      toolCalls?: ToolCall[];
      /** A refusal the model gave on an earlier turn. */
      refusal?: string;
      /** Reasoning text passed back from an earlier turn. */
      reasoning?: string;
    }
  | { role: "tool"; content: ContentPart[]; toolCallId: string };

/** A JSON Schema document, as the caller sent it (validated at the edge). */
export type JsonSchema = Readonly<Record<string, unknown>>;

export interface ToolDefinition {
  name: string;
  description?: string;
  parameters?: JsonSchema;
  /** Arguments must validate against `parameters`. */
  strict: boolean;
  /** Where `parameters` sit in the caller's request (`tools[2].function.parameters`), for errors. */
  param?: string;
}

export type ToolChoice =
  | { mode: "auto" }
  | { mode: "none" }
  | { mode: "required" }
  | { mode: "named"; name: string }
  /** Only these tools may be called (the rest stay visible to the model); `required`: one must be. */
  | { mode: "allowed"; names: string[]; required: boolean };

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; name: string; schema: JsonSchema; strict: boolean };

/**
 * What the output must look like. A backend honours every part of it or refuses the request
 * with a 400 naming `param` (the field as the caller's API spells it: `tools`,
 * `response_format`, `text.format`), never ignores it.
 */
export interface OutputConstraint {
  tools?: {
    definitions: ToolDefinition[];
    choice: ToolChoice;
    parallel: boolean;
    param: string;
  };
  format?: {
    value: Exclude<ResponseFormat, { type: "text" }>;
    param: string;
    /** Where the JSON Schema sits in the request (`response_format.json_schema.schema`), for errors. */
    schemaParam?: string;
  };
}

/** The text of a message's parts (for templates and token counts); other parts are skipped. */
export function textOf(content: readonly ContentPart[]): string {
  let text = "";
  for (const part of content) if (part.type === "text") text += part.text;
  return text;
}

export const textContent = (text: string): ContentPart[] => (text ? [{ type: "text", text }] : []);
