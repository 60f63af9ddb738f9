import type { LlamaModel, Token } from "node-llama-cpp";
import type { Logger } from "pino";
import type { FimTokens } from "../engine.js";
import { fimTokensOf } from "./fim-tokens.js";
import { type GpuMode, sharedLlama } from "./in-process/llama-instance.js";

/**
 * The model's tokenizer in this process, for the engines that run the model in another one: its
 * vocabulary only (no weights, no context, no threads), loaded with the llama.cpp revision the
 * llama-server build comes from (and the runner runs). A prompt is tokenized in microseconds
 * instead of one round trip to the engine process per chat-template segment, and exactly as the
 * in-process engine tokenizes it.
 */
export class VocabTokenizer {
  private constructor(private readonly model: LlamaModel) {}

  /** undefined when the vocabulary cannot be loaded here (the engine then asks its process). */
  static async open(modelPath: string, logger: Logger, gpu: GpuMode): Promise<VocabTokenizer | undefined> {
    try {
      const llama = await sharedLlama(logger, gpu);
      const model = await llama.loadModel({ modelPath, vocabOnly: true, gpuLayers: 0 });
      return new VocabTokenizer(model);
    } catch (err) {
      logger.warn(
        { err },
        "could not load the model's vocabulary in-process; tokenizing through the engine process",
      );
      return undefined;
    }
  }

  tokenize(text: string, options: { special: boolean; continuation?: boolean }): number[] {
    return (
      options.continuation
        ? this.model.tokenize(text, options.special, "trimLeadingSpace")
        : this.model.tokenize(text, options.special)
    ) as number[];
  }

  detokenize(tokens: readonly number[]): string {
    return this.model.detokenize(tokens as Token[], false);
  }

  /** The fill-in-the-middle tokens, as llama.cpp finds them. */
  fim(): FimTokens | undefined {
    return fimTokensOf(this.model);
  }

  /** The BOS token and whether the tokenizer wants it in front of a prompt. */
  bos(): { id: number | undefined; prepend: boolean } {
    return { id: this.model.tokens.bos ?? undefined, prepend: this.model.tokens.shouldPrependBosToken };
  }

  /** The end token and whether the tokenizer wants it after an input (embedding models such as BERT's). */
  eos(): { id: number | undefined; append: boolean } {
    return { id: this.model.tokens.eos ?? undefined, append: this.model.tokens.shouldAppendEosToken };
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }
}
