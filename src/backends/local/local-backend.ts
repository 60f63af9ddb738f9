import { contextLengthExceeded, invalidRequest, serviceUnavailable } from "../../core/errors.js";
import type {
  BackendCapabilities,
  BackendHealth,
  BackendStats,
  CostEstimate,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedGeneration,
  SamplingParams,
  TokenLogprob,
  UsageCounts,
} from "../../core/generation.js";
import { mergeStreams } from "../../core/merge-streams.js";
import { ChatTemplate, type PromptSegment } from "./chat-template.js";
import type { EngineEvent, LocalEngine, TokenCandidate } from "./engine.js";
import { engineReportOf, engineServing } from "./engines/engine-status.js";
import { StopMatcher } from "./stop-matcher.js";

/** A request rendered and tokenized by this backend, ready to generate. */
class LocalPreparedGeneration implements PreparedGeneration {
  readonly estimate: CostEstimate;
  readonly progress: UsageCounts;

  constructor(
    readonly request: GenerationRequest,
    readonly tokens: number[],
    readonly maxTokensPerChoice: number,
  ) {
    // Tokenized here, so the prompt's count is exact.
    this.estimate = { promptTokens: tokens.length, maxTokensPerChoice, exact: true };
    // The prompt counts as consumed once an engine has taken it (its first "prompt" event).
    this.progress = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  }
}

export interface LocalBackendOptions {
  /** Operator-configured template; the GGUF's own is used otherwise, then ChatML. */
  chatTemplate?: string;
}

/**
 * Everything OpenAI-shaped about a local model, written once over any LocalEngine: chat
 * templates, context-length checks, n parallel choices, stop strings and log probabilities.
 */
export class LocalBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities = {
    chat: true,
    completions: true,
    embeddings: false,
    tools: false,
    structuredOutputs: false,
    vision: false,
    audioInput: false,
    fileInput: false,
    logprobs: true,
  };
  private template: ChatTemplate | undefined;

  constructor(
    readonly engine: LocalEngine,
    private readonly options: LocalBackendOptions = {},
  ) {}

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

  async prepare(req: GenerationRequest): Promise<PreparedGeneration> {
    if (!this.isReady()) {
      try {
        await this.ready();
      } catch (err) {
        // The cause (a path, a loader message) goes to the log, not to the client.
        throw serviceUnavailable(`The model '${req.model}' could not be loaded.`, err);
      }
    }
    const meta = this.engine.metadata();
    checkLogitBias(req, meta.vocabSize);
    const param = req.input.kind === "chat" ? "messages" : "prompt";
    const segments = this.promptSegments(req);
    // A prompt that cannot fit whatever its tokens is refused from its length alone: an 8 MiB
    // body then costs no more than a small one.
    const fewestTokens = minimumTokens(segments, meta.longestTokenBytes);
    if (fewestTokens >= meta.contextSize) {
      throw contextLengthExceeded(meta.contextSize, fewestTokens + (req.maxTokens ?? 1), param, true);
    }
    const promptTokens = await this.tokenizeSegments(segments);
    if (promptTokens.length >= meta.contextSize) {
      throw contextLengthExceeded(meta.contextSize, promptTokens.length + (req.maxTokens ?? 1), param);
    }
    const room = meta.contextSize - promptTokens.length;
    if (req.maxTokens !== undefined && req.maxTokens > room) {
      throw contextLengthExceeded(meta.contextSize, promptTokens.length + req.maxTokens, param);
    }
    return new LocalPreparedGeneration(req, promptTokens, req.maxTokens ?? room);
  }

  async *generate(prepared: PreparedGeneration, signal: AbortSignal): AsyncGenerator<GenerationPart> {
    if (!(prepared instanceof LocalPreparedGeneration)) throw new Error("prepared by another backend");
    const { request: req, tokens: promptTokens, maxTokensPerChoice: maxTokens } = prepared;
    const meta = this.engine.metadata();
    const counters = prepared.progress;
    const choices = Array.from({ length: req.n }, (_, choice) =>
      this.runChoice(choice, req, promptTokens, maxTokens, counters, signal),
    );
    // A request runs at most as many choices at once as the model has slots, so a large n is
    // served in waves instead of flooding the queue (and being refused) on its own.
    yield* mergeStreams(choices, meta.slots);
    if (signal.aborted) return;
    yield {
      type: "usage",
      promptTokens: promptTokens.length,
      completionTokens: counters.completionTokens,
      cachedTokens: counters.cachedTokens,
    };
  }

  /** The prompt as text segments: template text may spell special tokens, caller text never does. */
  private promptSegments(req: GenerationRequest): readonly PromptSegment[] {
    if (req.input.kind === "chat") return (this.template as ChatTemplate).renderSegments(req.input.messages);
    return [{ text: req.input.text, trusted: false }];
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
        if (choice === 0) {
          counters.promptTokens = event.promptTokens;
          counters.cachedTokens = event.cachedTokens;
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
