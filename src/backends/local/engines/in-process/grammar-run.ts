import type { Llama, LlamaGrammarEvaluationState, LlamaModel, Token } from "node-llama-cpp";
import type { EngineGrammar } from "../../engine.js";
import { GrammarTrigger } from "../grammar-trigger.js";

/**
 * What node-llama-cpp has for a grammar state besides handing it to its own sampler, reached
 * through its internal binding (it uses the same two calls for its token predictor): whether a
 * token may come next, and advancing the state by a token. Checked once per engine so that an
 * upgrade that drops them fails at load, not mid-generation.
 */
interface GrammarBinding {
  canBeNextTokenForGrammarEvaluationState(state: unknown, token: number): boolean;
  acceptGrammarEvaluationStateToken(state: unknown, token: number): void;
}

type InternalState = LlamaGrammarEvaluationState & { _state?: unknown };

export function grammarBinding(llama: Llama): GrammarBinding {
  const sampler = (llama as unknown as { _bindings?: { AddonSampler?: Partial<GrammarBinding> } })._bindings
    ?.AddonSampler;
  if (
    typeof sampler?.canBeNextTokenForGrammarEvaluationState !== "function" ||
    typeof sampler.acceptGrammarEvaluationStateToken !== "function"
  ) {
    throw new Error(
      "this node-llama-cpp has no grammar-state binding (canBeNext/accept); grammars cannot run",
    );
  }
  return sampler as GrammarBinding;
}

/** Generated tokens kept as context for checking how trigger text tokenizes. */
const RECENT_TOKENS = 8;

/**
 * One generation's grammar. Eager: active from the first token. Lazy: inactive (free text) until
 * the text generated so far holds a trigger; then a fresh state is fed the text from the
 * trigger's start on, and is active from the next token. Tokens already emitted stay emitted: the
 * grammar must accept the trigger text, which its root begins with; if it does not, the generation
 * fails (as llama.cpp fails it).
 *
 * Feeding text: node-llama-cpp advances a state by tokens only, so the text is tokenized; a
 * grammar matches characters, not tokens, so any tokenization whose pieces spell the text gives the
 * same state (checked: the tokens must decode back to the text).
 */
export class GrammarRun {
  /** The state sampling keeps to; undefined while a lazy grammar waits for its trigger. */
  active: LlamaGrammarEvaluationState | undefined;
  private readonly trigger: GrammarTrigger | undefined;
  /** The last tokens before the text generated so far (the prompt's, at first). */
  private recent: Token[];

  constructor(
    private readonly model: LlamaModel,
    private readonly binding: GrammarBinding,
    /** The grammar's start state for this model; cloned, never used itself. */
    private readonly start: LlamaGrammarEvaluationState,
    lazy: EngineGrammar["lazy"],
    promptTail: readonly Token[],
  ) {
    this.recent = promptTail.slice(-RECENT_TOKENS);
    if (lazy) this.trigger = new GrammarTrigger(lazy);
    else this.active = start.clone();
  }

  /** Whether the active state lets `token` come next (an end-of-generation token: only when complete). */
  allows(token: number): boolean {
    const state = this.active as InternalState | undefined;
    if (!state) return true;
    return this.binding.canBeNextTokenForGrammarEvaluationState(state._state, token);
  }

  /**
   * Advances the active state by a token the caller's own sampler picked (llama.cpp's sampler
   * advances it itself). Never an end-of-generation token: llama.cpp aborts the process on one
   * the grammar is not finished for.
   */
  accept(token: Token): void {
    const state = this.active as InternalState | undefined;
    if (!state || this.model.isEogToken(token)) return;
    this.binding.acceptGrammarEvaluationStateToken(state._state, token);
  }

  /** After each generated token, with the text it added: a lazy grammar watches for its trigger. */
  observe(token: Token, text: string): void {
    if (!this.trigger || this.active) return;
    const start = this.trigger.push(text);
    if (start === undefined) {
      this.recent.push(token);
      if (this.recent.length > RECENT_TOKENS) this.recent = this.recent.slice(-RECENT_TOKENS);
      return;
    }
    const state = this.start.clone() as InternalState;
    this.feed(state, this.trigger.generated.slice(start));
    this.active = state;
  }

  private feed(state: InternalState, text: string): void {
    const tokens = this.model.tokenize(text, false, "trimLeadingSpace");
    const spelled = this.model.detokenize(tokens, false, this.recent);
    if (spelled !== text) {
      throw new Error(
        `the grammar's trigger text does not tokenize back to itself (${JSON.stringify(text)})`,
      );
    }
    for (const token of tokens) {
      if (this.model.isEogToken(token))
        throw new Error("the grammar's trigger text holds an end-of-generation token");
      try {
        this.binding.acceptGrammarEvaluationStateToken(state._state, token);
      } catch (err) {
        throw new Error(
          `the grammar does not accept the text from its trigger on (${JSON.stringify(text)})`,
          {
            cause: err,
          },
        );
      }
    }
  }
}
