import type { EmbeddingResult } from "../../core/generation.js";

export type EncodingFormat = "float" | "base64";

/** The `list` of `embedding` objects, in input order, with the input tokens as usage. */
export function encodeEmbeddings(result: EmbeddingResult, model: string, format: EncodingFormat): object {
  return {
    object: "list",
    data: result.vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: format === "base64" ? base64Float32(vector) : Array.from(vector),
    })),
    model,
    usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens },
  };
}

/** Little-endian float32 bytes in base64, what OpenAI's SDKs decode (whatever this host's byte order). */
export function base64Float32(vector: Float32Array): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] as number, i * 4);
  return bytes.toString("base64");
}
