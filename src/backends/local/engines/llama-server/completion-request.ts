import type { SamplingParams } from "../../../../core/generation.js";
import type { EngineGrammar, TokenGeneration } from "../../engine.js";

/**
 * The body of llama-server's native /completion for one generation: token ids in, streamed, on
 * the slot Switchboard chose (`id_slot`, with `cache_prompt` so the slot's cache is reused).
 */
export function completionBody(
  req: TokenGeneration,
  slot: number,
  contextSize: number,
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    prompt: req.promptTokens,
    n_predict: req.maxTokens,
    stream: true,
    cache_prompt: true,
    id_slot: slot,
    // A first message as the prompt starts, saying how much of it the slot's cache held.
    return_progress: true,
    ...samplingFields(req.sampling, contextSize),
  };
  if (req.grammar) Object.assign(body, grammarFields(req.grammar));
  if (req.topLogprobs !== undefined) {
    // The model's own distribution (before temperature and truncation), as in-process reports it.
    body.n_probs = Math.max(1, req.topLogprobs);
    body.post_sampling_probs = false;
  }
  return body;
}

/**
 * The body that scores a prompt (see LlamaServerEngine.scorePrompt): its first token as the
 * prompt, the rest forced by a grammar of token ids (`<[id]>`), greedy, not streamed, with the
 * model's own probabilities of each token (before the grammar) and `top` alternatives.
 */
export function promptScoringBody(
  prompt: readonly number[],
  top: number,
  slot: number,
): Record<string, unknown> {
  const rest = prompt.slice(1).map((token) => `<[${token}]>`);
  return {
    prompt: prompt.slice(0, 1),
    n_predict: prompt.length - 1,
    stream: false,
    cache_prompt: true,
    id_slot: slot,
    grammar: `root ::= ${rest.join(" ")}`,
    temperature: 0,
    ignore_eos: false,
    n_probs: Math.max(1, top),
    post_sampling_probs: false,
  };
}

/** llama.cpp's trigger kinds (common_grammar_trigger_type). */
const TRIGGER_WORD = 1;
const TRIGGER_PATTERN = 2;

/**
 * A grammar for /completion. A lazy one names its triggers; trigger words are also preserved
 * tokens, which llama-server insists on for words that are one token (a tool-call tag).
 */
export function grammarFields(grammar: EngineGrammar): Record<string, unknown> {
  if (!grammar.lazy) return { grammar: grammar.gbnf };
  return {
    grammar: grammar.gbnf,
    grammar_lazy: true,
    grammar_triggers: [
      ...grammar.lazy.words.map((value) => ({ type: TRIGGER_WORD, value })),
      ...grammar.lazy.patterns.map((value) => ({ type: TRIGGER_PATTERN, value })),
    ],
    preserved_tokens: [...grammar.lazy.words],
  };
}

/** llama.cpp's samplers for temperature 0: after bias and penalties only the likeliest token is left. */
const GREEDY_SAMPLERS = ["penalties", "top_k"];
const OPENAI_SAMPLERS = ["penalties", "temperature", "top_p"];

/**
 * OpenAI sampling on llama.cpp's sampler chain (logit bias first, then the named samplers):
 * penalties, temperature, then top_p (the OpenAI order) over every token, unless a truncation was
 * asked for: top_k (before temperature, which does not reorder tokens), min_p last, as vLLM
 * applies them. Temperature 0 is greedy: top_k 1 picks the same token as a pass over the whole
 * distribution would, without it. Penalties span the whole context; logit bias goes as
 * [[id, bias]] (false bans a token).
 */
export function samplingFields(sampling: SamplingParams, contextSize: number): Record<string, unknown> {
  const topK = sampling.topK ?? 0;
  const minP = sampling.minP ?? 0;
  const greedy = sampling.temperature <= 0;
  const fields: Record<string, unknown> = {
    temperature: sampling.temperature,
    top_p: sampling.topP,
    top_k: greedy ? 1 : topK,
    min_p: minP,
    typical_p: 1,
    samplers: greedy
      ? GREEDY_SAMPLERS
      : topK === 0 && minP === 0
        ? OPENAI_SAMPLERS
        : truncatingSamplers(topK, minP),
    ignore_eos: false,
  };
  if (sampling.seed !== undefined) fields.seed = sampling.seed;
  const repeat = sampling.repetitionPenalty ?? 1;
  if (sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0 || repeat !== 1) {
    fields.presence_penalty = sampling.presencePenalty;
    fields.frequency_penalty = sampling.frequencyPenalty;
    fields.repeat_penalty = repeat;
    fields.repeat_last_n = contextSize;
  } else {
    fields.repeat_penalty = 1;
  }
  if (sampling.logitBias && sampling.logitBias.size > 0) {
    fields.logit_bias = [...sampling.logitBias].map(([token, bias]) => [token, bias <= -100 ? false : bias]);
  }
  return fields;
}

function truncatingSamplers(topK: number, minP: number): string[] {
  const samplers = ["penalties"];
  if (topK > 0) samplers.push("top_k");
  samplers.push("temperature", "top_p");
  if (minP > 0) samplers.push("min_p");
  return samplers;
}

/** Prompt tokens reused from the slot's cache: from the first progress message (or final timings). */
export function cachedFrom(message: Record<string, unknown>): number | undefined {
  const progress = message.prompt_progress as { cache?: unknown } | undefined;
  if (typeof progress?.cache === "number") return progress.cache;
  const timings = message.timings as { cache_n?: unknown } | undefined;
  return typeof timings?.cache_n === "number" ? timings.cache_n : undefined;
}
