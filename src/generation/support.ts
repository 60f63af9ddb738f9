import { invalidRequest, unsupportedParameter } from "../core/errors.js";
import type { BackendCapabilities, GenerationRequest } from "../core/generation.js";

/**
 * Refuses, with a 400 naming the field, every part of a request the chosen backend cannot honour:
 * nothing a caller asked for is silently dropped. Backend-specific limits (context size, token
 * ids) are the backend's own checks in prepare().
 */
export function assertSupported(req: GenerationRequest, caps: BackendCapabilities, model: string): void {
  const constraint = req.constraint;
  if (constraint?.tools && !caps.tools) {
    throw unsupportedParameter(constraint.tools.param, `The model '${model}' does not support tools.`);
  }
  if (constraint?.format && !caps.structuredOutputs) {
    throw unsupportedParameter(
      constraint.format.param,
      `The model '${model}' does not support the ${constraint.format.value.type} response format.`,
    );
  }
  if (req.logprobs && !caps.logprobs) {
    throw unsupportedParameter("logprobs", `The model '${model}' does not report log probabilities.`);
  }
  if (req.input.kind !== "chat") return;
  req.input.messages.forEach((message, i) => {
    const at = `messages[${i}]`;
    if (message.role === "assistant" && message.toolCalls?.length && !caps.tools) {
      throw unsupportedParameter(`${at}.tool_calls`, `The model '${model}' does not support tool calls.`);
    }
    message.content.forEach((part, j) => {
      const param = `${at}.content[${j}]`;
      if (part.type === "image" && !caps.vision)
        refuseContent(param, "This model does not support image inputs.");
      if (part.type === "audio" && !caps.audioInput)
        refuseContent(param, "This model does not support audio inputs.");
      if (part.type === "file" && !caps.fileInput)
        refuseContent(param, "This model does not support file inputs.");
    });
  });
}

function refuseContent(param: string, message: string): never {
  throw invalidRequest(message, param, "unsupported_content");
}
