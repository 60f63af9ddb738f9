import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "../../core/generation.js";
import { invalidRequest } from "../../http/errors.js";

/** Used when a GGUF carries no template: ChatML is what most small instruction models speak. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

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

  render(messages: readonly ChatMessage[]): string {
    try {
      return this.template.render({
        messages: messages.map(toTemplateMessage),
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

function toTemplateMessage(message: ChatMessage): Record<string, unknown> {
  // Few templates know the newer "developer" role; it carries the same weight as "system".
  const role = message.role === "developer" ? "system" : message.role;
  const out: Record<string, unknown> = { role, content: message.content };
  if (message.name) out.name = message.name;
  if (message.toolCallId) out.tool_call_id = message.toolCallId;
  return out;
}
