import { randomBytes } from "node:crypto";
import { Template } from "@huggingface/jinja";
import { invalidRequest } from "../../core/errors.js";
import type { ChatMessage } from "../../core/generation.js";
import { textOf } from "../../core/messages.js";

/** Used when a GGUF carries no template: ChatML is what most small instruction models speak. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Random per process, so a caller cannot forge a placeholder. */
const PLACEHOLDER_NONCE = randomBytes(8).toString("hex");

export interface PromptSegment {
  text: string;
  /** Template text may contain special tokens; caller text is tokenized as plain text. */
  trusted: boolean;
}

export interface ChatTemplateContext {
  bosToken: string | undefined;
  eosToken: string | undefined;
}

/**
 * A model's jinja chat template, compiled once. Only the operator chooses a template (the GGUF's
 * own or one in config); a request never can, since a template is code.
 */
export class ChatTemplate {
  private readonly template: Template;

  constructor(
    source: string | undefined,
    private readonly context: ChatTemplateContext,
  ) {
    this.template = new Template(source ?? CHATML_TEMPLATE);
  }

  /**
   * Renders the prompt as segments: the template's own text (which may hold special tokens) and
   * the callers' message contents, kept apart so content is tokenized as plain text and cannot
   * smuggle in control tokens such as `<|im_start|>system`. Falls back to one trusted segment
   * when the template transforms content so that the placeholders cannot be found intact.
   */
  renderSegments(chat: readonly ChatMessage[]): PromptSegment[] {
    const messages = chat.map(toTemplateMessage);
    const placeholders = messages.map((_, i) => `\u2063sb${PLACEHOLDER_NONCE}m${i}\u2063`);
    const rendered = this.renderTemplate(
      messages.map((m, i) => ({ ...m, content: placeholders[i] as string })),
    );
    const segments: PromptSegment[] = [];
    let at = 0;
    for (let i = 0; i < messages.length; i++) {
      const placeholder = placeholders[i] as string;
      const found = rendered.indexOf(placeholder, at);
      if (found < 0 || rendered.indexOf(placeholder, found + 1) >= 0) {
        return [{ text: this.renderTemplate(messages), trusted: true }];
      }
      if (found > at) segments.push({ text: rendered.slice(at, found), trusted: true });
      const content = (messages[i] as TemplateMessage).content;
      if (content) segments.push({ text: content, trusted: false });
      at = found + placeholder.length;
    }
    if (at < rendered.length) segments.push({ text: rendered.slice(at), trusted: true });
    return segments;
  }

  render(chat: readonly ChatMessage[]): string {
    return this.renderTemplate(chat.map(toTemplateMessage));
  }

  private renderTemplate(messages: readonly TemplateMessage[]): string {
    try {
      return this.template.render({
        messages: messages.map(toTemplateObject),
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
}

function toTemplateMessage(message: ChatMessage): TemplateMessage {
  // Few templates know the newer "developer" role; it carries the same weight as "system".
  const role = message.role === "developer" ? "system" : message.role;
  const out: TemplateMessage = { role, content: textOf(message.content) };
  if (message.role !== "tool" && message.name) out.name = message.name;
  if (message.role === "tool") out.toolCallId = message.toolCallId;
  return out;
}

function toTemplateObject(message: TemplateMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: message.role, content: message.content };
  if (message.name) out.name = message.name;
  if (message.toolCallId) out.tool_call_id = message.toolCallId;
  return out;
}
