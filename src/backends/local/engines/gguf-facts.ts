import { readGgufMetadata } from "../../../models/gguf-reader.js";
import { type EnginePooling, type FimTokens, poolingFromId } from "../engine.js";
import { fimTokensFromKeys } from "./fim-tokens.js";

/** What an engine process needs to know about a model before it starts one. */
export interface GgufFacts {
  trainContextSize: number;
  embeddingSize: number;
  vocabSize: number;
  /** UTF-8 bytes of the vocabulary's longest token (0 when the GGUF lists no tokens). */
  longestTokenBytes: number;
  /** The model's own chat template, if it carries one. */
  chatTemplate: string | undefined;
  /** `<arch>.pooling_type`, for embedding models that declare one. */
  pooling: EnginePooling | undefined;
  /** Fill-in-the-middle tokens named by the header's keys (not by token texts: that needs the vocabulary loaded). */
  fim: FimTokens | undefined;
}

/**
 * Reads the model's GGUF header (no weights, no native code): the training context sizes the
 * default context, and the chat template is taken exactly as the in-process engine reads it.
 */
export async function readGgufFacts(path: string): Promise<GgufFacts> {
  const metadata = await readGgufMetadata(path, { keepArray: (key) => key === "tokenizer.ggml.tokens" });
  const arch = metadata.get("general.architecture");
  const archNumber = (key: string) => {
    const value = typeof arch === "string" ? metadata.get(`${arch}.${key}`) : undefined;
    return typeof value === "number" ? value : undefined;
  };
  const tokens = metadata.get("tokenizer.ggml.tokens");
  const template = metadata.get("tokenizer.chat_template");
  const ggml: Record<string, unknown> = {};
  for (const [key, value] of metadata) {
    if (key.startsWith("tokenizer.ggml.")) ggml[key.slice("tokenizer.ggml.".length)] = value;
  }
  return {
    trainContextSize: archNumber("context_length") ?? 4096,
    embeddingSize: archNumber("embedding_length") ?? 0,
    vocabSize: Array.isArray(tokens) ? tokens.length : 0,
    longestTokenBytes: longestTokenBytes(Array.isArray(tokens) ? tokens : undefined),
    chatTemplate: typeof template === "string" ? template : undefined,
    pooling: poolingFromId(archNumber("pooling_type")),
    fim: fimTokensFromKeys(ggml),
  };
}

/**
 * The most UTF-8 bytes any one vocabulary entry spells. A token never stands for more text than
 * its entry's bytes (byte-level BPE spells each byte with one or two bytes, SentencePiece spells a
 * space as three, byte tokens as six), so a text of N UTF-16 units needs at least
 * N / longestTokenBytes tokens: a lower bound that costs nothing to check before tokenizing.
 */
export function longestTokenBytes(tokens: readonly unknown[] | undefined): number {
  let longest = 0;
  for (const token of tokens ?? []) {
    if (typeof token !== "string") continue;
    // UTF-8 is at most 3 bytes per UTF-16 unit: only entries that could be longer are measured.
    if (token.length * 3 <= longest) continue;
    longest = Math.max(longest, Buffer.byteLength(token, "utf8"));
  }
  return longest;
}
