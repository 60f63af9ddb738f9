import { invalidRequest, unsupportedParameter } from "../../core/errors.js";
import type { GenerationRequest, PromptInput } from "../../core/generation.js";
import { toSampling, toStop } from "../sampling.js";
import type { CompletionRequest } from "./schema.js";

/** What the encoder needs to know besides the parts. */
export interface CompletionShape {
  /** Prompts in the request; the response has `n` choices each. */
  prompts: number;
  n: number;
  /** Choices generated per prompt (best_of): the best `n` of them by summed log probability are kept. */
  bestOf: number;
  /**
   * The prompt texts, put in front of each choice's text when `echo` is on (undefined: off); with
   * logprobs, the prompt's tokens lead each choice's logprobs (from its `prompt-logprobs` part).
   */
  echo: string[] | undefined;
  /** Alternatives per token in `logprobs` (undefined: no logprobs in the response). */
  logprobs: number | undefined;
}

/** Wire request → internal request and the response's shape. Throws 400s that name the field. */
export function toGenerationRequest(
  req: CompletionRequest,
  model: string,
  limits: { maxN: number },
): { request: GenerationRequest; shape: CompletionShape } {
  const prompts = toPrompts(req.prompt);
  const n = req.n ?? 1;
  const bestOf = req.best_of ?? n;
  if (bestOf < n) throw invalidRequest("best_of must be at least n.", "best_of", "invalid_value");
  if (req.stream && bestOf > n) {
    throw invalidRequest(
      "best_of cannot be streamed: it picks the best choices once all are done.",
      "best_of",
    );
  }
  if (prompts.length * bestOf > limits.maxN) {
    throw invalidRequest(
      `This request asks for ${prompts.length * bestOf} sequences (prompts × ${req.best_of ? "best_of" : "n"}); this server allows ${limits.maxN}.`,
      req.best_of ? "best_of" : "n",
      "invalid_value",
    );
  }
  if (req.stream_options && !req.stream) {
    throw invalidRequest("stream_options is only allowed when stream is true.", "stream_options");
  }
  const echo = req.echo === true;
  if (echo && prompts.some((prompt) => "tokens" in prompt)) {
    throw unsupportedParameter("echo", "echo is supported for text prompts only.");
  }
  // An empty suffix is no suffix (as before fill-in-the-middle existed here).
  const suffix = req.suffix || undefined;
  if (suffix !== undefined) {
    if (echo) throw unsupportedParameter("suffix", "suffix cannot be combined with echo.");
    if (prompts.some((prompt) => "tokens" in prompt)) {
      throw unsupportedParameter("suffix", "suffix is supported for text prompts only.");
    }
  }
  const stop = toStop(req.stop);
  const logprobs = req.logprobs ?? undefined;
  const request: GenerationRequest = {
    model,
    input: {
      kind: "prompts",
      prompts: suffix === undefined ? prompts : prompts.map((prompt) => ({ ...prompt, suffix })),
    },
    sampling: toSampling(req),
    // OpenAI's default for this API is 16 tokens; 0 generates nothing (with echo: the prompt back).
    maxTokens: req.max_tokens ?? 16,
    stop,
    n: bestOf,
    // Ranking best_of needs each sampled token's log probability, even when none are returned.
    // echo with logprobs: the prompt's own tokens are scored too.
    logprobs:
      logprobs !== undefined
        ? { top: logprobs, ...(echo ? { prompt: true } : {}) }
        : bestOf > n
          ? { top: 0 }
          : undefined,
  };
  return {
    request,
    shape: {
      prompts: prompts.length,
      n,
      bestOf,
      echo: echo ? prompts.map((prompt) => ("text" in prompt ? prompt.text : "")) : undefined,
      logprobs,
    },
  };
}

function toPrompts(prompt: CompletionRequest["prompt"]): PromptInput[] {
  if (typeof prompt === "string") return [{ text: prompt }];
  if (prompt.length > 0 && typeof prompt[0] === "number") return [{ tokens: prompt as number[] }];
  return (prompt as (string | number[])[]).map((item) =>
    typeof item === "string" ? { text: item } : { tokens: item },
  );
}
