import { setMaxListeners } from "node:events";
import type { Cancellation } from "../../core/cancellation.js";
import {
  contextLengthExceeded,
  invalidRequest,
  serviceUnavailable,
  unsupportedParameter,
} from "../../core/errors.js";
import type {
  BackendCapabilities,
  BackendHealth,
  BackendStats,
  ChatMessage,
  CostEstimate,
  EmbeddingRequest,
  EmbeddingResult,
  EngineChoice,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedEmbedding,
  PreparedGeneration,
  PromptInput,
  PromptTokenLogprob,
  SamplingParams,
  TokenLogprob,
  UsageCounts,
} from "../../core/generation.js";
import { mergeStreams } from "../../core/merge-streams.js";
import type { ToolDefinition } from "../../core/messages.js";
import { ArrivalGate } from "./arrival-gate.js";
import { ChatTemplate, type PromptSegment } from "./chat-template.js";
import type { EngineEvent, FimTokens, LocalEngine, PromptTokenScore, TokenCandidate } from "./engine.js";
import { engineReportOf, engineServing } from "./engines/engine-status.js";
import { type EmbeddingSettings, embeddingInputLimit, LocalEmbedder } from "./local-embeddings.js";
import { StopMatcher } from "./stop-matcher.js";
import {
  assertCallable,
  type OutputPlan,
  planOutput,
  reasoningModeOf,
  renderOptionsFor,
} from "./tools/output-plan.js";
import { OutputReader, type OutputReaderOptions, type ReaderEvent } from "./tools/output-reader.js";
import { type ToolSyntax, toolSyntaxFor } from "./tools/tool-syntax.js";

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
    /** A chat's grammar and how its output is read; raw prompts have none. */
    readonly plan: OutputPlan | undefined,
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
  /** Why this engine runs the model, for the engine report. */
  engineChoice?: EngineChoice;
  /** The operator's sampling truncations for requests that leave them out (models[].sampling_defaults). */
  samplingDefaults?: Pick<SamplingParams, "topK" | "minP" | "repetitionPenalty">;
}

/**
 * Everything OpenAI-shaped about a local model, written once over any LocalEngine: chat
 * templates, context-length checks, n parallel choices, stop strings and log probabilities.
 */
export class LocalBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities;
  private template: ChatTemplate | undefined;
  private syntax: ToolSyntax | undefined;
  private readonly embedder: LocalEmbedder | undefined;
  /** Requests that arrive together go to the engine together (see ArrivalGate). */
  private readonly arrivals = new ArrivalGate(ARRIVAL_WAIT_MS);

  constructor(
    readonly engine: LocalEngine,
    private readonly options: LocalBackendOptions = {},
  ) {
    const generates = options.embedding === undefined;
    // Tools and structured outputs are held by a grammar, so they need an engine that applies one.
    this.capabilities = {
      chat: generates,
      completions: generates,
      embeddings: !generates,
      tools: generates && engine.grammars,
      structuredOutputs: generates && engine.grammars,
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
    const template = new ChatTemplate(this.options.chatTemplate ?? meta.chatTemplate, {
      bosToken: meta.bosToken,
      eosToken: meta.eosToken,
    });
    this.syntax = toolSyntaxFor(template.source);
    this.template = template;
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
    if (this.options.engineChoice) engine.choice = this.options.engineChoice;
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

  embed(prepared: PreparedEmbedding, cancel: Cancellation): Promise<EmbeddingResult> {
    return this.embedderOf(prepared.request.model).embed(prepared, cancel.signal);
  }

  /** Known once the model is loaded: its context, less the tokens that frame an input. */
  embeddingInputLimit(): number | undefined {
    if (!this.embedder || !this.engine.isLoaded()) return undefined;
    return embeddingInputLimit(this.engine.metadata());
  }

  private embedderOf(model: string): LocalEmbedder {
    if (!this.embedder) throw invalidRequest(`The model '${model}' does not create embeddings.`, "model");
    return this.embedder;
  }

  prepare(req: GenerationRequest): Promise<PreparedGeneration> {
    return this.arrivals.preparing(() => this.prepareNow(req));
  }

  private async prepareNow(req: GenerationRequest): Promise<PreparedGeneration> {
    await this.ensureLoaded(req.model);
    const meta = this.engine.metadata();
    checkLogitBias(req, meta.vocabSize);
    const param = req.input.kind === "chat" ? "messages" : "prompt";
    let plan: OutputPlan | undefined;
    let sources: PromptSource[];
    if (req.input.kind === "chat") {
      const chat = await this.renderChat(req, req.input.messages);
      sources = [{ segments: chat.segments }];
      plan = chat.plan;
    } else {
      sources = req.input.prompts.map(toPromptSource);
      if (sources.some((source) => "infill" in source) && !meta.fim) {
        throw unsupportedParameter(
          "suffix",
          `The model '${req.model}' has no fill-in-the-middle tokens, so it cannot complete with a suffix.`,
        );
      }
    }
    // A prompt that cannot fit whatever its tokens is refused from its length alone: an 8 MiB
    // body then costs no more than a small one.
    for (const source of sources) {
      const exact = "tokens" in source;
      const fewest = exact ? source.tokens.length : minimumTokens(segmentsOf(source), meta.longestTokenBytes);
      if (fewest >= meta.contextSize) {
        throw contextLengthExceeded(meta.contextSize, fewest + (req.maxTokens ?? 1), param, !exact);
      }
    }
    const prompts: number[][] = [];
    for (const source of sources) {
      const tokens =
        "tokens" in source
          ? checkTokenIds(source.tokens, meta.vocabSize)
          : "infill" in source
            ? await this.infillPrompt(source.infill, meta.fim as FimTokens)
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
    return new LocalPreparedGeneration(req, prompts, req.maxTokens ?? meta.contextSize - shortest, plan);
  }

  /** The conversation as prompt segments, and how its output is constrained and read. */
  private async renderChat(
    req: GenerationRequest,
    messages: readonly ChatMessage[],
  ): Promise<{ segments: PromptSegment[]; plan: OutputPlan }> {
    const template = this.template as ChatTemplate;
    const syntax = this.syntax as ToolSyntax;
    assertCallable(req.constraint);
    const render = renderOptionsFor(req, template, syntax);
    await this.refuseControlText(
      templateRenderedText(messages, render.tools && syntax.templateRendersTools ? render.tools : []),
    );
    const segments = template.renderSegments(messages, render);
    const last = segments.at(-1);
    const reasoning = reasoningModeOf(template, last?.trusted ? last.text : "");
    return { segments, plan: planOutput(req.constraint, syntax, reasoning) };
  }

  /**
   * Caller text that the template writes among its own (tool definitions, call arguments, names)
   * is tokenized as template text, so it must not spell one of the model's control tokens: that
   * would let a request forge turns. Such text tokenizes differently with special tokens parsed.
   */
  private async refuseControlText(text: string): Promise<void> {
    if (text === "") return;
    const [parsed, plain] = await Promise.all([
      this.engine.tokenize(text, { special: true }),
      this.engine.tokenize(text, { special: false }),
    ]);
    if (parsed.length === plain.length && parsed.every((token, i) => token === plain[i])) return;
    throw invalidRequest(
      "Tool definitions, tool calls and names must not contain this model's control tokens.",
      "messages",
      "invalid_value",
    );
  }

  async *generate(prepared: PreparedGeneration, cancel: Cancellation): AsyncGenerator<GenerationPart> {
    if (!(prepared instanceof LocalPreparedGeneration)) throw new Error("prepared by another backend");
    // The engines take an AbortSignal: made here, for local work only.
    const signal = cancel.signal;
    const { request: req, prompts, maxTokensPerChoice } = prepared;
    await this.arrivals.beforeSubmit();
    const meta = this.engine.metadata();
    const counters = prepared.progress;
    // Each choice running at once (up to n=128) listens on the signal: expected, not a leak. Set
    // here, where the choices fan out, rather than on every request's signal (a cost per request).
    if (prompts.length * req.n > 1) setMaxListeners(256, signal);
    const choices = Array.from({ length: prompts.length * req.n }, (_, choice) => {
      const prompt = prompts[Math.floor(choice / req.n)] as number[];
      // Without max_tokens a choice may fill what its own prompt leaves.
      const maxTokens = req.maxTokens ?? Math.min(maxTokensPerChoice, meta.contextSize - prompt.length);
      return this.runChoice(choice, prepared, prompt, maxTokens, signal);
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
      ...(counters.reasoningTokens ? { reasoningTokens: counters.reasoningTokens } : {}),
    };
  }

  /**
   * Each segment tokenized on its own, all at once (an engine in another process answers them
   * concurrently); every segment after the first non-empty one continues the prompt.
   */
  private async tokenizeSegments(segments: readonly PromptSegment[]): Promise<number[]> {
    const meta = this.engine.metadata();
    const first = segments.findIndex((segment) => segment.text !== "");
    const pieces = await Promise.all(
      segments.map((segment, i) =>
        this.engine.tokenize(segment.text, {
          special: segment.trusted,
          continuation: first >= 0 && i > first,
        }),
      ),
    );
    const tokens: number[] = [];
    // A loop, not push(...piece): spreading a long array into a call overflows the stack.
    for (const piece of pieces) for (const token of piece) tokens.push(token);
    return withBos(tokens, meta.addBosToken, meta.bosTokenId);
  }

  /**
   * A fill-in-the-middle prompt in the PSM order llama.cpp's /infill uses by default:
   * [BOS] FIM_PRE prefix FIM_SUF suffix FIM_MID, the model then writing the middle. The caller's
   * texts are tokenized as plain text, each on its own (as llama.cpp does), so they cannot spell a
   * control token. Models trained on the SPM order (suffix first) are not told apart by their GGUF.
   */
  private async infillPrompt(infill: { prefix: string; suffix: string }, fim: FimTokens): Promise<number[]> {
    const meta = this.engine.metadata();
    const tokens = [fim.prefix];
    for (const token of await this.engine.tokenize(infill.prefix, { special: false })) tokens.push(token);
    tokens.push(fim.suffix);
    for (const token of await this.engine.tokenize(infill.suffix, { special: false })) tokens.push(token);
    tokens.push(fim.middle);
    return withBos(tokens, meta.addBosToken, meta.bosTokenId);
  }

  private async *runChoice(
    choice: number,
    prepared: LocalPreparedGeneration,
    promptTokens: number[],
    maxTokens: number,
    signal: AbortSignal,
  ): AsyncGenerator<GenerationPart> {
    const { request: req, plan } = prepared;
    const counters = prepared.progress;
    const output = new ChoiceOutput(choice, req.stop, req.logprobs !== undefined, plan?.reader);
    const stream = this.engine.generate(
      {
        promptTokens,
        maxTokens,
        sampling: choiceSampling(withDefaults(req.sampling, this.options.samplingDefaults), choice),
        topLogprobs: req.logprobs?.top,
        ...(plan?.grammar ? { grammar: plan.grammar } : {}),
        ...(req.logprobs?.prompt ? { promptLogprobs: req.logprobs.top } : {}),
        ...(req.priority ? { priority: req.priority } : {}),
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
      if (event.type === "prompt-logprobs") {
        yield { type: "prompt-logprobs", choice, logprobs: event.tokens.map(toPromptTokenLogprob) };
        continue;
      }
      if (event.type === "end") {
        yield* output.end(event.reason);
        return;
      }
      if (event.token >= 0) {
        counters.completionTokens++;
        if (output.reasoning) counters.reasoningTokens = (counters.reasoningTokens ?? 0) + 1;
      }
      const parts = output.push(event);
      yield* parts;
      if (output.stopped) return;
    }
  }
}

/**
 * One choice's output on its way out: split into reasoning, text and calls (when the request
 * has a plan), stop strings applied to the text, log probabilities attached to the text they
 * belong to.
 */
class ChoiceOutput {
  stopped = false;
  private readonly stop: StopMatcher;
  private readonly reader: OutputReader | undefined;
  private pendingLogprobs: TokenLogprob[] = [];

  constructor(
    private readonly choice: number,
    stops: readonly string[],
    private readonly wantLogprobs: boolean,
    reader: OutputReaderOptions | undefined,
  ) {
    this.stop = new StopMatcher(stops);
    this.reader = reader ? new OutputReader(reader) : undefined;
  }

  get reasoning(): boolean {
    return this.reader?.reasoning ?? false;
  }

  push(event: Extract<EngineEvent, { type: "token" }>): GenerationPart[] {
    if (this.wantLogprobs && event.token >= 0) this.pendingLogprobs.push(toTokenLogprob(event));
    const parts: GenerationPart[] = [];
    if (!this.reader) {
      this.text(event.text, parts);
      return parts;
    }
    const events = this.reader.push(event.text);
    for (const read of events) {
      this.route(read, parts);
      if (this.stopped) break;
    }
    // Tokens spent on reasoning or calls have no place in the text's log probabilities.
    if (events.length > 0 && !events.some((read) => read.type === "content")) this.pendingLogprobs = [];
    return parts;
  }

  *end(reason: "stop" | "length"): Generator<GenerationPart> {
    const parts: GenerationPart[] = [];
    if (this.reader) for (const read of this.reader.end()) if (!this.stopped) this.route(read, parts);
    if (this.stopped) {
      yield* parts;
      return;
    }
    const rest = this.stop.flush();
    if (rest || this.pendingLogprobs.length) parts.push(this.textPart(rest));
    yield* parts;
    const called = (this.reader?.callCount ?? 0) > 0;
    yield {
      type: "finish",
      choice: this.choice,
      reason: called && reason === "stop" ? "tool_calls" : reason,
    };
  }

  private route(read: ReaderEvent, parts: GenerationPart[]): void {
    if (read.type === "content") this.text(read.text, parts);
    else if (read.type === "reasoning")
      parts.push({ type: "reasoning", choice: this.choice, text: read.text });
    else {
      parts.push({
        type: "tool-call",
        choice: this.choice,
        index: read.index,
        ...(read.id !== undefined ? { id: read.id } : {}),
        ...(read.name !== undefined ? { name: read.name } : {}),
        argumentsDelta: read.argumentsDelta,
      });
    }
  }

  private text(text: string, parts: GenerationPart[]): void {
    const { emit, stopped } = this.stop.push(text);
    if (stopped) {
      // Tokens that formed the stop string are not part of the output.
      if (emit) parts.push(this.textPart(emit, this.pendingLogprobs.slice(0, -1)));
      parts.push({ type: "finish", choice: this.choice, reason: "stop" });
      this.stopped = true;
      return;
    }
    if (emit) parts.push(this.textPart(emit));
  }

  private textPart(text: string, logprobs = this.pendingLogprobs): GenerationPart {
    if (!this.wantLogprobs) return { type: "text", choice: this.choice, text };
    this.pendingLogprobs = [];
    return { type: "text", choice: this.choice, text, logprobs };
  }
}

/** Caller text a template writes among its own: tools it renders, calls, ids, names, reasoning. */
function templateRenderedText(messages: readonly ChatMessage[], tools: readonly ToolDefinition[]): string {
  const parts: string[] = tools.length ? [JSON.stringify(tools)] : [];
  for (const message of messages) {
    if (message.role !== "tool" && message.name) parts.push(message.name);
    if (message.role === "tool") parts.push(message.toolCallId);
    if (message.role === "assistant") {
      for (const call of message.toolCalls ?? []) parts.push(call.id, call.name, call.arguments);
      if (message.reasoning) parts.push(message.reasoning);
    }
  }
  return parts.join("\n");
}

/**
 * Each choice gets its own seed (seed + index) so n choices differ from each other while the
 * whole response stays reproducible for a given seed.
 */
function choiceSampling(sampling: SamplingParams, choice: number): SamplingParams {
  if (choice === 0 || sampling.seed === undefined) return sampling;
  return { ...sampling, seed: (sampling.seed + choice) % 2 ** 32 };
}

/** The request's sampling with the model's defaults where it left a truncation out. */
function withDefaults(
  sampling: SamplingParams,
  defaults: LocalBackendOptions["samplingDefaults"],
): SamplingParams {
  if (!defaults) return sampling;
  return {
    ...sampling,
    topK: sampling.topK ?? defaults.topK,
    minP: sampling.minP ?? defaults.minP,
    repetitionPenalty: sampling.repetitionPenalty ?? defaults.repetitionPenalty,
  };
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

/**
 * A prompt to tokenize (template segments, or a raw text), token ids taken as they are, or the two
 * texts of a fill-in-the-middle prompt.
 */
type PromptSource =
  | { segments: readonly PromptSegment[] }
  | { tokens: number[] }
  | { infill: { prefix: string; suffix: string } };

function toPromptSource(prompt: PromptInput): PromptSource {
  if ("tokens" in prompt) return { tokens: prompt.tokens };
  if (prompt.suffix !== undefined) return { infill: { prefix: prompt.text, suffix: prompt.suffix } };
  // Raw completions: the caller's text is data, never parsed for special tokens.
  return { segments: [{ text: prompt.text, trusted: false }] };
}

/** The texts of a source to tokenize, for the length-only lower bound. */
function segmentsOf(source: Exclude<PromptSource, { tokens: number[] }>): readonly PromptSegment[] {
  if ("segments" in source) return source.segments;
  return [
    { text: source.infill.prefix, trusted: false },
    { text: source.infill.suffix, trusted: false },
  ];
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
/**
 * The longest a prepared request waits for others being prepared with it: tokenizing a prompt
 * through the engine process takes a few milliseconds, one prompt decode far longer.
 */
const ARRIVAL_WAIT_MS = 10;

function toTokenLogprob(event: Extract<EngineEvent, { type: "token" }>): TokenLogprob {
  const piece = event.piece ?? event.text;
  return {
    token: piece,
    logprob: event.logprob ?? 0,
    bytes: Array.from(utf8.encode(piece)),
    top: (event.top ?? []).map(toCandidate),
  };
}

function toPromptTokenLogprob(score: PromptTokenScore): PromptTokenLogprob {
  return {
    token: score.piece,
    logprob: score.logprob ?? null,
    bytes: Array.from(utf8.encode(score.piece)),
    top: score.top ? score.top.map(toCandidate) : null,
  };
}

function toCandidate(candidate: TokenCandidate) {
  return {
    token: candidate.text,
    logprob: candidate.logprob,
    bytes: Array.from(utf8.encode(candidate.text)),
  };
}
