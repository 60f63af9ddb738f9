import { contextLengthExceeded, invalidRequest, serviceUnavailable } from "../../core/errors.js";
import type {
  BackendCapabilities,
  BackendHealth,
  BackendStats,
  CostEstimate,
  EmbeddingRequest,
  EmbeddingResult,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedEmbedding,
  PreparedGeneration,
  PromptInput,
  SamplingParams,
  TokenLogprob,
  UsageCounts,
} from "../../core/generation.js";
import { mergeStreams } from "../../core/merge-streams.js";
import { ChatTemplate, type PromptSegment } from "./chat-template.js";
import type { EngineEvent, LocalEngine, TokenCandidate } from "./engine.js";
import { engineReportOf, engineServing } from "./engines/engine-status.js";
import { type EmbeddingSettings, LocalEmbedder } from "./local-embeddings.js";
import { StopMatcher } from "./stop-matcher.js";

/** A request rendered and tokenized by this backend, ready to generate. */
class LocalPreparedGeneration implements PreparedGeneration {
  readonly estimate: CostEstimate;
  readonly progress: UsageCounts;
  /** Prompt tokens counted once per prompt, whatever n is. */
  readonly promptTokenCount: number;

  constructor(
    readonly request: GenerationRequest,
    /** One prompt for a chat, one per raw prompt otherwise; choice c runs prompt ⌊c / n⌋. */
    readonly prompts: number[][],
    readonly maxTokensPerChoice: number,
  ) {
    this.promptTokenCount = prompts.reduce((sum, tokens) => sum + tokens.length, 0);
    // Tokenized here, so the prompt's count is exact.
    this.estimate = {
      promptTokens: this.promptTokenCount,
      maxTokensPerChoice,
      choices: prompts.length * request.n,
      exact: true,
    };
    // The prompt counts as consumed once an engine has taken it (its first "prompt" event).
    this.progress = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  }
}

export interface LocalBackendOptions {
  /** Operator-configured template; the GGUF's own is used otherwise, then ChatML. */
  chatTemplate?: string;
  /** The public model id, for messages. */
  modelId?: string;
  /** An embedding model (its engine loaded in embedding mode): it embeds and does not generate. */
  embedding?: EmbeddingSettings;
}

/**
 * Everything OpenAI-shaped about a local model, written once over any LocalEngine: chat
 * templates, context-length checks, n parallel choices, stop strings and log probabilities.
 */
export class LocalBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities;
  private template: ChatTemplate | undefined;
  private readonly embedder: LocalEmbedder | undefined;

  constructor(
    readonly engine: LocalEngine,
    private readonly options: LocalBackendOptions = {},
  ) {
    const generates = options.embedding === undefined;
    this.capabilities = {
      chat: generates,
      completions: generates,
      embeddings: !generates,
      tools: false,
      structuredOutputs: false,
      vision: false,
      audioInput: false,
      fileInput: false,
      logprobs: generates,
    };
    this.embedder =
      options.embedding && new LocalEmbedder(engine, options.embedding, options.modelId ?? "model");
  }

  async ready(): Promise<void> {
    await this.engine.load();
    const meta = this.engine.metadata();
    this.template = new ChatTemplate(this.options.chatTemplate ?? meta.chatTemplate, {
      bosToken: meta.bosToken,
      eosToken: meta.eosToken,
    });
  }

  isReady(): boolean {
    return this.engine.isLoaded() && this.template !== undefined;
  }

  stats(): BackendStats {
    return this.engine.stats();
  }

  health(): BackendHealth {
    const loaded = this.isReady();
    const engine = engineReportOf(this.engine, loaded);
    return { loaded, serving: loaded && engineServing(engine), engine };
  }

  close(): Promise<void> {
    return this.engine.close();
  }

  async tokenize(text: string, options: { special: boolean }): Promise<number[]> {
    await this.ensureLoaded();
    const meta = this.engine.metadata();
    // Tokenizing is for budgeting prompts: a text that cannot fit the context is refused from its length.
    const fewest = minimumTokens([{ text, trusted: options.special }], meta.longestTokenBytes);
    if (fewest >= meta.contextSize) throw contextLengthExceeded(meta.contextSize, fewest, "content", true);
    return this.engine.tokenize(text, { special: options.special });
  }

  async detokenize(tokens: readonly number[]): Promise<string> {
    await this.ensureLoaded();
    return this.engine.detokenize(checkTokenIds([...tokens], this.engine.metadata().vocabSize, "tokens"));
  }

  private async ensureLoaded(model = this.options.modelId ?? "model"): Promise<void> {
    if (this.isReady()) return;
    try {
      await this.ready();
    } catch (err) {
      // The cause (a path, a loader message) goes to the log, not to the client.
      throw serviceUnavailable(`The model '${model}' could not be loaded.`, err);
    }
  }

  async prepareEmbedding(req: EmbeddingRequest): Promise<PreparedEmbedding> {
    await this.ensureLoaded(req.model);
    return this.embedderOf(req.model).prepare(req);
  }

  embed(prepared: PreparedEmbedding, signal: AbortSignal): Promise<EmbeddingResult> {
    return this.embedderOf(prepared.request.model).embed(prepared, signal);
  }

  private embedderOf(model: string): LocalEmbedder {
    if (!this.embedder) throw invalidRequest(`The model '${model}' does not create embeddings.`, "model");
    return this.embedder;
  }

  async prepare(req: GenerationRequest): Promise<PreparedGeneration> {
    await this.ensureLoaded(req.model);
    const meta = this.engine.metadata();
    checkLogitBias(req, meta.vocabSize);
    const param = req.input.kind === "chat" ? "messages" : "prompt";
    const sources: PromptSource[] =
      req.input.kind === "chat"
        ? [{ segments: (this.template as ChatTemplate).renderSegments(req.input.messages) }]
        : req.input.prompts.map(toPromptSource);
    // A prompt that cannot fit whatever its tokens is refused from its length alone: an 8 MiB
    // body then costs no more than a small one.
    for (const source of sources) {
      const exact = "tokens" in source;
      const fewest = exact ? source.tokens.length : minimumTokens(source.segments, meta.longestTokenBytes);
      if (fewest >= meta.contextSize) {
        throw contextLengthExceeded(meta.contextSize, fewest + (req.maxTokens ?? 1), param, !exact);
      }
    }
    const prompts: number[][] = [];
    for (const source of sources) {
      const tokens =
        "tokens" in source
          ? checkTokenIds(source.tokens, meta.vocabSize)
          : await this.tokenizeSegments(source.segments);
      if (tokens.length >= meta.contextSize) {
        throw contextLengthExceeded(meta.contextSize, tokens.length + (req.maxTokens ?? 1), param);
      }
      if (req.maxTokens !== undefined && req.maxTokens > meta.contextSize - tokens.length) {
        throw contextLengthExceeded(meta.contextSize, tokens.length + req.maxTokens, param);
      }
      prompts.push(tokens);
    }
    // Without max_tokens a choice may fill what its prompt leaves; the bound is the shortest prompt's.
    let shortest = Number.POSITIVE_INFINITY;
    for (const tokens of prompts) shortest = Math.min(shortest, tokens.length);
    return new LocalPreparedGeneration(req, prompts, req.maxTokens ?? meta.contextSize - shortest);
  }

  async *generate(prepared: PreparedGeneration, signal: AbortSignal): AsyncGenerator<GenerationPart> {
    if (!(prepared instanceof LocalPreparedGeneration)) throw new Error("prepared by another backend");
    const { request: req, prompts, maxTokensPerChoice } = prepared;
    const meta = this.engine.metadata();
    const counters = prepared.progress;
    const choices = Array.from({ length: prompts.length * req.n }, (_, choice) => {
      const prompt = prompts[Math.floor(choice / req.n)] as number[];
      // Without max_tokens a choice may fill what its own prompt leaves.
      const maxTokens = req.maxTokens ?? Math.min(maxTokensPerChoice, meta.contextSize - prompt.length);
      return this.runChoice(choice, req, prompt, maxTokens, counters, signal);
    });
    // A request runs at most as many choices at once as the model has slots, so a large n is
    // served in waves instead of flooding the queue (and being refused) on its own.
    yield* mergeStreams(choices, meta.slots);
    if (signal.aborted) return;
    yield {
      type: "usage",
      promptTokens: prepared.promptTokenCount,
      completionTokens: counters.completionTokens,
      cachedTokens: counters.cachedTokens,
    };
  }

  private async tokenizeSegments(segments: readonly PromptSegment[]): Promise<number[]> {
    const meta = this.engine.metadata();
    const tokens: number[] = [];
    for (const segment of segments) {
      const continuation = tokens.length > 0;
      const segmentTokens = await this.engine.tokenize(segment.text, {
        special: segment.trusted,
        continuation,
      });
      // A loop, not push(...segmentTokens): spreading a long array into a call overflows the stack.
      for (const token of segmentTokens) tokens.push(token);
    }
    return withBos(tokens, meta.addBosToken, meta.bosTokenId);
  }

  private async *runChoice(
    choice: number,
    req: GenerationRequest,
    promptTokens: number[],
    maxTokens: number,
    counters: UsageCounts,
    signal: AbortSignal,
  ): AsyncGenerator<GenerationPart> {
    const stop = new StopMatcher(req.stop);
    const wantLogprobs = req.logprobs !== undefined;
    let pendingLogprobs: TokenLogprob[] = [];
    const stream = this.engine.generate(
      {
        promptTokens,
        maxTokens,
        sampling: choiceSampling(req.sampling, choice),
        topLogprobs: req.logprobs?.top,
      },
      signal,
    );
    for await (const event of stream as AsyncIterable<EngineEvent>) {
      if (event.type === "prompt") {
        // Each prompt counts once, on the first of its choices.
        if (choice % req.n === 0) {
          counters.promptTokens += event.promptTokens;
          counters.cachedTokens += event.cachedTokens;
        }
        continue;
      }
      if (event.type === "end") {
        const rest = stop.flush();
        if (rest || pendingLogprobs.length)
          yield textPart(choice, rest, wantLogprobs ? pendingLogprobs : undefined);
        yield { type: "finish", choice, reason: event.reason };
        return;
      }
      if (event.token >= 0) counters.completionTokens++;
      if (wantLogprobs && event.token >= 0) pendingLogprobs.push(toTokenLogprob(event));
      const { emit, stopped } = stop.push(event.text);
      if (stopped) {
        // Tokens that formed the stop string are not part of the output.
        if (emit) yield textPart(choice, emit, wantLogprobs ? pendingLogprobs.slice(0, -1) : undefined);
        yield { type: "finish", choice, reason: "stop" };
        return;
      }
      if (emit) {
        yield textPart(choice, emit, wantLogprobs ? pendingLogprobs : undefined);
        pendingLogprobs = [];
      }
    }
  }
}

/**
 * Each choice gets its own seed (seed + index) so n choices differ from each other while the
 * whole response stays reproducible for a given seed.
 */
function choiceSampling(sampling: SamplingParams, choice: number): SamplingParams {
  if (choice === 0 || sampling.seed === undefined) return sampling;
  return { ...sampling, seed: (sampling.seed + choice) % 2 ** 32 };
}

function checkLogitBias(req: GenerationRequest, vocabSize: number): void {
  if (!req.sampling.logitBias || vocabSize <= 0) return;
  for (const token of req.sampling.logitBias.keys()) {
    if (token >= vocabSize) {
      throw invalidRequest(
        `logit_bias names token ${token}, but this model's vocabulary has ${vocabSize} tokens.`,
        "logit_bias",
        "invalid_value",
      );
    }
  }
}

function textPart(choice: number, text: string, logprobs: TokenLogprob[] | undefined): GenerationPart {
  return logprobs ? { type: "text", choice, text, logprobs } : { type: "text", choice, text };
}

/** A prompt to tokenize (template segments, or a raw text), or token ids taken as they are. */
type PromptSource = { segments: readonly PromptSegment[] } | { tokens: number[] };

function toPromptSource(prompt: PromptInput): PromptSource {
  // Raw completions: the caller's text is data, never parsed for special tokens.
  return "tokens" in prompt
    ? { tokens: prompt.tokens }
    : { segments: [{ text: prompt.text, trusted: false }] };
}

function checkTokenIds(tokens: number[], vocabSize: number, param = "prompt"): number[] {
  if (vocabSize <= 0) return tokens;
  for (const token of tokens) {
    if (token >= vocabSize) {
      throw invalidRequest(
        `The ${param} hold token id ${token}, but this model's vocabulary has ${vocabSize} tokens.`,
        param,
        "invalid_value",
      );
    }
  }
  return tokens;
}

/** The fewest tokens the segments can tokenize to (0 when the vocabulary is unknown). */
function minimumTokens(segments: readonly PromptSegment[], longestTokenBytes: number): number {
  if (longestTokenBytes <= 0) return 0;
  let total = 0;
  for (const segment of segments) total += Math.ceil(segment.text.length / longestTokenBytes);
  return total;
}

function withBos(tokens: number[], addBos: boolean, bosId: number | undefined): number[] {
  if (!addBos || bosId === undefined || tokens[0] === bosId) return tokens;
  return [bosId, ...tokens];
}

const utf8 = new TextEncoder();

function toTokenLogprob(event: Extract<EngineEvent, { type: "token" }>): TokenLogprob {
  const piece = event.piece ?? event.text;
  return {
    token: piece,
    logprob: event.logprob ?? 0,
    bytes: Array.from(utf8.encode(piece)),
    top: (event.top ?? []).map(toCandidate),
  };
}

function toCandidate(candidate: TokenCandidate) {
  return {
    token: candidate.text,
    logprob: candidate.logprob,
    bytes: Array.from(utf8.encode(candidate.text)),
  };
}
