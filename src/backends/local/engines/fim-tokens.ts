import type { LlamaModel } from "node-llama-cpp";
import type { FimTokens } from "../engine.js";

/**
 * A model's fill-in-the-middle tokens as llama.cpp's vocabulary loader finds them: the GGUF's
 * tokenizer.ggml.fim_pre/suf/mid_token_id keys, else well-known token texts (`<|fim_prefix|>`,
 * `<fim-prefix>`, `<fim_prefix>`, `<PRE>`, ...). undefined unless all three are there.
 */
export function fimTokensOf(model: LlamaModel): FimTokens | undefined {
  const { prefix, suffix, middle } = model.tokens.infill;
  if (prefix == null || suffix == null || middle == null) return undefined;
  return { prefix, suffix, middle };
}

/**
 * The same from the GGUF header's keys alone (no native code): for an engine process whose
 * vocabulary cannot be loaded in this process.
 */
export function fimTokensFromKeys(ggml: Record<string, unknown> | undefined): FimTokens | undefined {
  const prefix = ggml?.fim_pre_token_id ?? ggml?.prefix_token_id;
  const suffix = ggml?.fim_suf_token_id ?? ggml?.suffix_token_id;
  const middle = ggml?.fim_mid_token_id ?? ggml?.middle_token_id;
  if (typeof prefix !== "number" || typeof suffix !== "number" || typeof middle !== "number")
    return undefined;
  return { prefix, suffix, middle };
}
