import type { ChunkingSizes } from "../../storage/repositories/vector-store-types.js";

/** `auto`: what OpenAI documents for it (800 tokens, 400 of overlap), where the model takes that much. */
export const AUTO_CHUNKING: ChunkingSizes = { maxChunkSizeTokens: 800, chunkOverlapTokens: 400, auto: true };

/** The smallest chunk the spec allows (max_chunk_size_tokens is 100–4096). */
export const MIN_CHUNK_TOKENS = 100;

/** The sizes a file is cut with, or why it cannot be cut for its model. */
export type FittedChunking = { sizes: ChunkingSizes } | { refusal: string };

/**
 * Fits a file's chunking to its embedding model, whose inputs hold at most `limit` tokens
 * (Infinity: no known bound). Sizes that fit stay as they are. `auto` is lowered to the limit with
 * half of it as overlap (OpenAI's 800/400 ratio, and the most the spec allows); a static size
 * that does not fit is refused, as is any model that cannot take the smallest chunk. Chunks are
 * never cut to fit later: the model would refuse or truncate every one.
 */
export function fitChunking(requested: ChunkingSizes, limit: number, model: string): FittedChunking {
  if (requested.maxChunkSizeTokens <= limit) return { sizes: requested };
  const most = Math.floor(limit);
  if (most < MIN_CHUNK_TOKENS) {
    return {
      refusal: `The embedding model '${model}' takes at most ${most} tokens per input, and chunks have at least ${MIN_CHUNK_TOKENS}.`,
    };
  }
  if (requested.auto) {
    return { sizes: { maxChunkSizeTokens: most, chunkOverlapTokens: Math.floor(most / 2), auto: true } };
  }
  return {
    refusal: `max_chunk_size_tokens is ${requested.maxChunkSizeTokens}, but the embedding model '${model}' takes at most ${most} tokens per input. Use at most ${most}, or the auto strategy (it fits the model).`,
  };
}

export function sameSizes(a: ChunkingSizes, b: ChunkingSizes): boolean {
  return a.maxChunkSizeTokens === b.maxChunkSizeTokens && a.chunkOverlapTokens === b.chunkOverlapTokens;
}
