import { randomBytes } from "node:crypto";
import { Template } from "@huggingface/jinja";
import { invalidRequest } from "../../core/errors.js";
import type { ChatMessage } from "../../core/generation.js";
import { type ToolDefinition, textOf } from "../../core/messages.js";
import type { ToolSyntax } from "./tools/tool-syntax.js";

/** Used when a GGUF carries no template: ChatML is what most small instruction models speak. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Random per process, so a caller cannot forge a placeholder. */
const PLACEHOLDER_NONCE = randomBytes(8).toString("hex");
const PLACEHOLDER_OPEN = `\u2063sb${PLACEHOLDER_NONCE}m`;
const PLACEHOLDER = new RegExp(`${PLACEHOLDER_OPEN}(\\d+)\u2063`, "g");

export interface PromptSegment {
  text: string;
  /** Template text may contain special tokens; caller text is tokenized as plain text. */
  trusted: boolean;
}

export interface ChatTemplateContext {
  bosToken: string | undefined;
  eosToken: string | undefined;
}

/** What a conversation is rendered with besides its messages. */
export interface RenderOptions {
  /** Tools the model is told about; rendered by the template, or described by us (generic). */
  tools?: readonly ToolDefinition[];
  /** How this template's model writes tool calls (assistant turns that called tools). */
  syntax: ToolSyntax;
  /** Variables for templates with a reasoning switch (`enable_thinking`, `reasoning_effort`). */
  variables?: Readonly<Record<string, unknown>>;
}

/**
 * A model's jinja chat template, compiled once. Only the operator chooses a template (the GGUF's
 * own or one in config); a request never can, since a template is code.
 */
export class ChatTemplate {
  private readonly template: Template;
  readonly source: string;

  constructor(
    source: string | undefined,
    private readonly context: ChatTemplateContext,
  ) {
    this.source = source ?? CHATML_TEMPLATE;
    this.template = new Template(this.source);
  }

  /** Whether the template reads a variable (a reasoning switch such as `enable_thinking`). */
  reads(variable: string): boolean {
    return new RegExp(`\\b${variable}\\b`).test(this.source);
  }

  /**
   * Renders the prompt as segments: the template's own text (which may hold special tokens) and
   * the callers' message contents, kept apart so content is tokenized as plain text and cannot
   * smuggle in control tokens such as `<|im_start|>system`. Each content is rendered as a
   * placeholder first; a template may write one content twice or leave it out. Falls back to one
   * trusted segment only when the template cut a placeholder apart.
   */
  renderSegments(chat: readonly ChatMessage[], options: RenderOptions): PromptSegment[] {
    const messages = templateMessages(chat, options);
    // Empty contents stay empty: templates test them (an assistant turn that only calls tools).
    const rendered = this.renderTemplate(
      messages.map((m, i) => (m.content ? { ...m, content: `${PLACEHOLDER_OPEN}${i}\u2063` } : m)),
      options,
    );
    const segments: PromptSegment[] = [];
    let at = 0;
    for (const match of rendered.matchAll(PLACEHOLDER)) {
      const content = messages[Number(match[1])]?.content;
      if (content === undefined) continue;
      if (match.index > at) segments.push({ text: rendered.slice(at, match.index), trusted: true });
      segments.push({ text: content, trusted: false });
      at = match.index + match[0].length;
    }
    if (at < rendered.length) segments.push({ text: rendered.slice(at), trusted: true });
    if (segments.some((segment) => segment.trusted && segment.text.includes(PLACEHOLDER_NONCE))) {
      return [{ text: this.renderTemplate(messages, options), trusted: true }];
    }
    return segments;
  }

  render(chat: readonly ChatMessage[], options: RenderOptions): string {
    return this.renderTemplate(templateMessages(chat, options), options);
  }

  private renderTemplate(messages: readonly TemplateMessage[], options: RenderOptions): string {
    const tools =
      options.tools?.length && options.syntax.templateRendersTools
        ? options.tools.map(toTemplateTool)
        : undefined;
    try {
      return this.template.render({
        ...options.variables,
        messages: messages.map((m) => toTemplateObject(m, options.syntax)),
        ...(tools ? { tools } : {}),
        add_generation_prompt: true,
        bos_token: this.context.bosToken ?? "",
        eos_token: this.context.eosToken ?? "",
      });
    } catch (err) {
      // Templates reject conversations they cannot express (e.g. roles that do not alternate).
      throw invalidRequest(
        `The model's chat template rejected these messages: ${(err as Error).message}`,
        "messages",
      );
    }
  }
}

/** A message as chat templates know it: its text, and the fields templates read. */
interface TemplateMessage {
  role: string;
  content: string;
  name?: string;
  toolCallId?: string;
  toolCalls?: { id: string; name: string; arguments: string }[];
  reasoning?: string;
}

/**
 * The conversation as the template will see it. A template that knows no tools (generic) gets
 * them described in a system message of ours, calls written out in the tag format the model is
 * asked to use, and results as user turns, which every template accepts.
 */
function templateMessages(chat: readonly ChatMessage[], options: RenderOptions): TemplateMessage[] {
  const messages = chat.map(toTemplateMessage);
  if (options.syntax.templateRendersTools) return messages;
  const out: TemplateMessage[] = [];
  for (const message of messages) {
    if (message.role === "tool") {
      const response = `<tool_response>\n${message.content}\n</tool_response>`;
      const last = out.at(-1);
      if (last?.role === "user" && last.toolCallId !== undefined) last.content += `\n${response}`;
      else out.push({ role: "user", content: response, toolCallId: message.toolCallId });
      continue;
    }
    if (message.toolCalls?.length) {
      const calls = message.toolCalls.map(
        (call) =>
          `<tool_call>\n{"name": ${JSON.stringify(call.name)}, "arguments": ${call.arguments || "{}"}}\n</tool_call>`,
      );
      const content = [message.content, ...calls].filter(Boolean).join("\n");
      out.push({ role: message.role, content, ...(message.name ? { name: message.name } : {}) });
      continue;
    }
    out.push(message);
  }
  for (const message of out) if (message.role === "user") delete message.toolCallId;
  if (options.tools?.length) {
    const described = describeTools(options.tools);
    const first = out[0];
    if (first?.role === "system") first.content = `${first.content}\n\n${described}`;
    else out.unshift({ role: "system", content: described });
  }
  return out;
}

/** The tool instructions for a template without tools of its own. */
function describeTools(tools: readonly ToolDefinition[]): string {
  const list = tools
    .map((tool) =>
      JSON.stringify({
        name: tool.name,
        ...(tool.description ? { description: tool.description } : {}),
        parameters: tool.parameters ?? { type: "object" },
      }),
    )
    .join("\n");
  return [
    "You can call these functions. Each is described as JSON:",
    list,
    "To call a function, answer with one block per call, and nothing else:",
    '<tool_call>\n{"name": <function name>, "arguments": <arguments as a JSON object>}\n</tool_call>',
    "Results come back in <tool_response> blocks.",
  ].join("\n");
}

function toTemplateMessage(message: ChatMessage): TemplateMessage {
  // Few templates know the newer "developer" role; it carries the same weight as "system".
  const role = message.role === "developer" ? "system" : message.role;
  const out: TemplateMessage = { role, content: textOf(message.content) };
  if (message.role !== "tool" && message.name) out.name = message.name;
  if (message.role === "tool") out.toolCallId = message.toolCallId;
  if (message.role === "assistant") {
    if (message.toolCalls?.length) out.toolCalls = message.toolCalls;
    if (message.reasoning) out.reasoning = message.reasoning;
  }
  return out;
}

function toTemplateObject(message: TemplateMessage, syntax: ToolSyntax): Record<string, unknown> {
  const out: Record<string, unknown> = { role: message.role, content: message.content };
  if (message.name) out.name = message.name;
  if (message.toolCallId) out.tool_call_id = syntax.templateCallId(message.toolCallId);
  if (message.reasoning) out.reasoning_content = message.reasoning;
  if (message.toolCalls) {
    out.tool_calls = message.toolCalls.map((call) => ({
      id: syntax.templateCallId(call.id),
      type: "function",
      // Templates write arguments with `tojson`: they expect an object, not its JSON text.
      function: { name: call.name, arguments: parseArguments(call.arguments) },
    }));
  }
  return out;
}

function parseArguments(text: string): unknown {
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function toTemplateTool(tool: ToolDefinition): Record<string, unknown> {
  return {
    type: "function",
    function: {
      name: tool.name,
      ...(tool.description ? { description: tool.description } : {}),
      parameters: tool.parameters ?? { type: "object", properties: {} },
    },
  };
}
