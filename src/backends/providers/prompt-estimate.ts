import type { GenerationRequest } from "../../core/generation.js";

/**
 * Prompt tokens guessed before the upstream counts them: about four characters a token, plus a
 * few per message for the role markers. Limits reserve from the guess and settle from the usage
 * the upstream reports, so the guess only needs to be in the right range.
 */
export function estimatePromptTokens(req: GenerationRequest): number {
  const input = req.input;
  if (input.kind === "prompts") {
    return input.prompts.reduce(
      (sum, prompt) => sum + ("tokens" in prompt ? prompt.tokens.length : charsToTokens(prompt.text.length)),
      0,
    );
  }
  let chars = 0;
  let tokens = 0;
  for (const message of input.messages) {
    tokens += 4;
    for (const part of message.content) {
      if (part.type === "text") chars += part.text.length;
      // Providers bill an image at a few hundred tokens; a fixed guess is enough to reserve.
      else tokens += 512;
    }
    if (message.role === "assistant") {
      for (const call of message.toolCalls ?? []) chars += call.name.length + call.arguments.length;
    }
  }
  for (const tool of req.constraint?.tools?.definitions ?? []) {
    chars +=
      tool.name.length + (tool.description?.length ?? 0) + JSON.stringify(tool.parameters ?? {}).length;
  }
  return tokens + charsToTokens(chars);
}

export function charsToTokens(chars: number): number {
  return Math.ceil(chars / 4);
}
