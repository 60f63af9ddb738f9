import { readGgufFileInfo } from "node-llama-cpp";

/** What an engine process needs to know about a model before it starts one. */
export interface GgufFacts {
  trainContextSize: number;
  embeddingSize: number;
  vocabSize: number;
  /** The model's own chat template, if it carries one. */
  chatTemplate: string | undefined;
}

/**
 * Reads the model's GGUF header (no weights, no native code): the training context sizes the
 * default context, and the chat template is taken exactly as the in-process engine reads it.
 */
export async function readGgufFacts(path: string): Promise<GgufFacts> {
  const info = await readGgufFileInfo(path, {
    readTensorInfo: false,
    sourceType: "filesystem",
    logWarnings: false,
  });
  const arch = info.architectureMetadata as { context_length?: number; embedding_length?: number };
  const tokenizer = info.metadata.tokenizer as
    | { chat_template?: unknown; ggml?: { tokens?: readonly unknown[] } }
    | undefined;
  return {
    trainContextSize: arch.context_length ?? 4096,
    embeddingSize: arch.embedding_length ?? 0,
    vocabSize: tokenizer?.ggml?.tokens?.length ?? 0,
    chatTemplate: typeof tokenizer?.chat_template === "string" ? tokenizer.chat_template : undefined,
  };
}
