/**
 * Wire fields and rules the generating APIs share (chat completions, responses, conversations):
 * one spelling of a function name, of metadata, of an image address, of tool-name uniqueness and
 * of a tool choice's resolution, so the APIs cannot drift apart.
 */
import { z } from "zod";
import { invalidRequest } from "../core/errors.js";
import type { ImageSource, ToolChoice } from "../core/messages.js";

/** A function name as OpenAI allows it. */
export const functionNameSchema = z
  .string()
  .regex(/^[a-zA-Z0-9_-]{1,64}$/, "use 1-64 letters, digits, _ or -");

/**
 * A tool call's id as a client sends it back (a call in an assistant turn, the call a tool result
 * answers). Ids we mint are short, but an upstream's opaque state for the call can ride in it
 * (Gemini's thought signatures, a few hundred bytes to some KiB), so the bound is generous.
 */
export const toolCallIdSchema = z.string().min(1).max(32_768);

/** Up to 16 string pairs, keys ≤64 and values ≤512 characters. */
export const metadataSchema = z
  .record(z.string().max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, "at most 16 keys");

/** `data:image/png;base64,…` inline, or an http(s) URL that a backend may fetch; anything else is a 400. */
export function imageSource(url: string, param: string): ImageSource {
  const data = /^data:([a-z]+\/[a-z0-9.+-]+);base64,(.*)$/is.exec(url);
  if (data) return { kind: "data", mediaType: (data[1] as string).toLowerCase(), base64: data[2] as string };
  if (/^https?:\/\//i.test(url)) return { kind: "url", url };
  throw invalidRequest("An image URL must be an http(s) URL or a base64 data URL.", param);
}

/** Tool names must be unique; `paramOf(i)` names the i-th tool's name field. */
export function assertUniqueToolNames(names: readonly string[], paramOf: (index: number) => string): void {
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (seen.has(name))
      throw invalidRequest(`Tool names must be unique: '${name}' appears twice.`, paramOf(i));
    seen.add(name);
  });
}

/** A tool choice as either API sends it, with where each named function sits in the request. */
export type WireToolChoice =
  | "none"
  | "auto"
  | "required"
  | null
  | undefined
  | { named: string; param: string }
  | { allowed: { name: string; param: string }[]; required: boolean };

/** The internal choice; every function it names must be among the tools. */
export function resolveToolChoice(choice: WireToolChoice, toolNames: readonly string[]): ToolChoice {
  if (choice == null || choice === "auto") return { mode: "auto" };
  if (choice === "none") return { mode: "none" };
  if (toolNames.length === 0) {
    throw invalidRequest("tool_choice requires tools: name the tools the model may call.", "tool_choice");
  }
  if (choice === "required") return { mode: "required" };
  const known = (name: string, param: string): string => {
    if (!toolNames.includes(name)) {
      throw invalidRequest(`tool_choice names '${name}', which is not among the tools.`, param);
    }
    return name;
  };
  if ("named" in choice) return { mode: "named", name: known(choice.named, choice.param) };
  return {
    mode: "allowed",
    names: choice.allowed.map((tool) => known(tool.name, tool.param)),
    required: choice.required,
  };
}
