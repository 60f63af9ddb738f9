import type { CostEstimate, EmbeddingRequest } from "./generation.js";

/**
 * An embedding request's input tokens guessed before an upstream counts them (about four
 * characters a token; token-id inputs exactly). Limits reserve from it and settle from the
 * usage the upstream reports.
 */
export function estimateEmbedding(req: EmbeddingRequest): CostEstimate {
  const input = req.input;
  const promptTokens =
    input.kind === "tokens"
      ? input.tokens.reduce((sum, item) => sum + item.length, 0)
      : input.texts.reduce((sum, text) => sum + Math.ceil(text.length / 4), 0);
  return { promptTokens, maxTokensPerChoice: 0, choices: 1, exact: input.kind === "tokens" };
}
