import { assertMayUseModel } from "../auth/model-access.js";
import type { Principal } from "../auth/principal.js";
import { type CancelInput, type Cancellation, cancellationOf } from "../core/cancellation.js";
import { type DrainableParts, drainParts } from "../core/drain-parts.js";
import { invalidRequest, ServiceError, serviceUnavailable, statusOf } from "../core/errors.js";
import type {
  EmbeddingRequest,
  EmbeddingResult,
  GenerateOptions,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  RequestPriority,
  UsageCounts,
} from "../core/generation.js";
import type { Deployment, ModelRegistry } from "../router/model-registry.js";
import type { Metering } from "../usage/metering.js";
import { assertSupported } from "./support.js";

/** What the service learnt about a call, for the caller's log line and metrics. */
export interface GenerationTelemetry {
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  timeToFirstTokenMs?: number;
}

/** Where finished generations' token counts go (the Prometheus metrics). */
export interface UsageObserver {
  recordUsage(model: string, usage: UsageCounts): void;
}

export type GenerationCapability = "chat" | "completions";

/** One generation as any caller asks for it: an HTTP route, a batch line, an assistants run. */
export interface GenerationCall {
  principal: Principal;
  /** The API it came through, for usage records ("chat.completions", "batch", …). */
  endpoint: string;
  capability: GenerationCapability;
  /** The model name as the caller sent it (an id or an alias). */
  model: string;
  /** Builds the internal request once the deployment is known (its id names the model). */
  toRequest(deployment: Deployment): GenerationRequest;
  /**
   * Cut when the caller goes away or the server stops waiting: a worker's AbortSignal, or a
   * request's own Cancellation (an HTTP request's: no AbortSignal is made for it on the way to an
   * upstream).
   */
  signal: CancelInput;
  /** Default interactive; batch lines run as batch, behind interactive requests. */
  priority?: RequestPriority;
  /** performance.now() when the call arrived; time to first token counts from it. */
  startedAt?: number;
  telemetry?: GenerationTelemetry;
}

/** One embedding request, from whichever caller (an HTTP route, a batch line). */
export interface EmbeddingCall {
  principal: Principal;
  /** The API it came through, for usage records ("embeddings", "batch"). */
  endpoint: string;
  /** The model name as the caller sent it (an id or an alias). */
  model: string;
  /** Builds the internal request once the deployment is known (its id names the model). */
  toRequest(deployment: Deployment): EmbeddingRequest;
  /** As GenerationCall's. */
  signal: CancelInput;
  /** Default interactive; batch lines run as batch, behind interactive requests. */
  priority?: RequestPriority;
  startedAt?: number;
  telemetry?: GenerationTelemetry;
}

/** A finished embedding request: the vectors, and what the caller's client should be told. */
export interface Embeddings {
  readonly deployment: Deployment;
  readonly result: EmbeddingResult;
  readonly hints: Readonly<Record<string, string>>;
}

/** A generation admitted and reserved: its parts, and the one way to end it. */
export interface Generation {
  readonly deployment: Deployment;
  readonly request: GenerationRequest;
  /** x-ratelimit-* and the like, for the caller's client. */
  readonly hints: Readonly<Record<string, string>>;
  /** The backend's parts; iterate once, these or wholeParts(). The signal stops them. */
  readonly parts: AsyncIterable<GenerationPart>;
  /**
   * The same parts, all of them, for a caller that takes the answer only once it is whole
   * (collectGeneration): the backend may then retry a failure anywhere before the end
   * (GenerateOptions.whole), and the parts come in one array rather than a promise each.
   */
  wholeParts(): Promise<GenerationPart[]>;
  /**
   * Settles limits and records usage (what was really used, or what a cut-short call consumed).
   * Call exactly once, whatever happened; `error` is what ended the call, if anything did.
   */
  end(outcome?: { error?: unknown }): Promise<void>;
}

const CAPABILITY_NAMES: Readonly<Record<GenerationCapability, string>> = {
  chat: "chat completions",
  completions: "text completions",
};

/**
 * The request lifecycle every generating endpoint shares, with no HTTP in it: resolve the model,
 * check access and capabilities, prepare (validate and measure), reserve limits, generate with
 * telemetry, then settle limits and record usage.
 */
export class GenerationService {
  constructor(
    private readonly deps: {
      registry: ModelRegistry;
      metering: Metering;
      observer?: UsageObserver;
    },
  ) {}

  /**
   * The prompt tokens a call would use (template applied, exactly for local models), without
   * generating, reserving or recording anything.
   */
  async countInputTokens(call: Omit<GenerationCall, "signal">): Promise<{ tokens: number; exact: boolean }> {
    const { deployment, request } = this.admit(call);
    const prepared = await deployment.backend.prepare(request);
    return { tokens: prepared.estimate.promptTokens, exact: prepared.estimate.exact };
  }

  /**
   * Refuses (as a request would be) a model that does not exist, that the caller may not use, or
   * that cannot serve `capability`; for checking requests queued for later (batch lines).
   */
  checkModel(principal: Principal, model: string, capability: GenerationCapability | "embeddings"): void {
    const deployment = this.deps.registry.resolve(model);
    assertMayUseModel(principal, deployment, model);
    const able =
      capability === "embeddings"
        ? deployment.backend.capabilities.embeddings
        : deployment.backend.capabilities[capability];
    if (!able) {
      const what = capability === "embeddings" ? "embeddings" : CAPABILITY_NAMES[capability];
      throw invalidRequest(`The model '${model}' does not support ${what}.`, "model");
    }
  }

  /**
   * The most tokens one input of an embedding model may hold (ModelBackend.embeddingInputLimit):
   * Infinity where no bound is known, undefined while it cannot be known yet (a local model that
   * is not loaded, or a model no longer configured: embedding is what refuses that).
   */
  embeddingInputLimit(model: string): number | undefined {
    const backend = this.deps.registry.find(model)?.backend;
    if (!backend) return undefined;
    return backend.embeddingInputLimit ? backend.embeddingInputLimit() : Number.POSITIVE_INFINITY;
  }

  /** The model's own tokenizer, for callers budgeting prompts. */
  tokenize(principal: Principal, model: string, text: string, special: boolean): Promise<number[]> {
    return this.tokenizerOf(principal, model).tokenize(text, { special });
  }

  detokenize(principal: Principal, model: string, tokens: readonly number[]): Promise<string> {
    return this.tokenizerOf(principal, model).detokenize(tokens);
  }

  async start(call: GenerationCall): Promise<Generation> {
    const { deployment, request } = this.admit(call);
    const backend = deployment.backend;
    const telemetry = call.telemetry ?? {};
    telemetry.model = deployment.id;

    const preparing = backend.prepare(request);
    const prepared = preparing instanceof Promise ? await preparing : preparing;
    const metered = await this.deps.metering.start(call.principal, deployment, prepared, call.endpoint);
    const startedAt = call.startedAt ?? performance.now();
    let usage: UsageCounts | undefined;
    let ended = false;
    const observer = this.deps.observer;
    const cancel = cancellationOf(call.signal);
    // Taken whole, a routed answer's parts come out at its end: its first token is timed on arrival.
    const takenWhole = (): GenerateOptions => ({
      whole: true,
      firstPart: () => {
        telemetry.timeToFirstTokenMs = performance.now() - startedAt;
      },
    });
    const parts = new ObservedParts(
      (whole) => backend.generate(prepared, cancel, whole ? takenWhole() : undefined)[Symbol.asyncIterator](),
      (part) => {
        if (telemetry.timeToFirstTokenMs === undefined && part.type !== "usage") {
          telemetry.timeToFirstTokenMs = performance.now() - startedAt;
        }
        if (part.type === "usage") usage = part;
      },
    );

    return {
      deployment,
      request,
      hints: metered.hints,
      parts,
      wholeParts: () => {
        parts.whole = true;
        return parts.drain();
      },
      end: async (outcome = {}) => {
        if (ended) return;
        ended = true;
        if (usage) {
          telemetry.promptTokens = usage.promptTokens;
          telemetry.completionTokens = usage.completionTokens;
          telemetry.cachedTokens = usage.cachedTokens;
          observer?.recordUsage(deployment.id, usage);
        }
        const status = outcome.error === undefined ? 200 : statusFor(outcome.error);
        // A call cut short is still charged for what it consumed.
        await metered.finish({
          status,
          usage: usage ?? prepared.progress,
          latencyMs: performance.now() - startedAt,
        });
      },
    };
  }

  /**
   * An embedding request's whole lifecycle: resolve, check access and that the model embeds,
   * prepare (validate and count the input), reserve limits, embed, settle and record usage.
   */
  async embed(call: EmbeddingCall): Promise<Embeddings> {
    const deployment = this.deps.registry.resolve(call.model);
    assertMayUseModel(call.principal, deployment, call.model);
    const backend = deployment.backend;
    if (!backend.capabilities.embeddings || !backend.prepareEmbedding || !backend.embed) {
      const able = this.deps.registry
        .all()
        .filter((d) => d.backend.capabilities.embeddings)
        .map((d) => `'${d.id}'`);
      const which = able.length > 0 ? ` Models that do: ${able.join(", ")}.` : " No model here does.";
      throw invalidRequest(`The model '${call.model}' does not create embeddings.${which}`, "model");
    }
    const telemetry = call.telemetry ?? {};
    telemetry.model = deployment.id;
    const prepared = await backend.prepareEmbedding(withPriority(call.toRequest(deployment), call.priority));
    const metered = await this.deps.metering.start(call.principal, deployment, prepared, call.endpoint);
    const startedAt = call.startedAt ?? performance.now();
    let usage: UsageCounts | undefined;
    let status = 200;
    const cancel = cancellationOf(call.signal);
    try {
      const result = await backend.embed(prepared, cancel);
      if (cancel.aborted) throw serviceUnavailable("The request was cancelled before it completed.");
      usage = { promptTokens: result.promptTokens, completionTokens: 0, cachedTokens: 0 };
      telemetry.promptTokens = usage.promptTokens;
      telemetry.completionTokens = 0;
      this.deps.observer?.recordUsage(deployment.id, usage);
      return { deployment, result, hints: metered.hints };
    } catch (err) {
      status = statusFor(err);
      throw err;
    } finally {
      // A caller that went away may have had its input evaluated already: it is charged as counted.
      // A failure of the engine is not charged.
      const charged = cancel.aborted ? prepared.estimate.promptTokens : 0;
      await metered.finish({
        status,
        usage: usage ?? { promptTokens: charged, completionTokens: 0, cachedTokens: 0 },
        latencyMs: performance.now() - startedAt,
      });
    }
  }

  /** The deployment and the internal request, once access and capabilities allow the call. */
  private admit(call: Omit<GenerationCall, "signal">): {
    deployment: Deployment;
    request: GenerationRequest;
  } {
    const deployment = this.deps.registry.resolve(call.model);
    assertMayUseModel(call.principal, deployment, call.model);
    const backend = deployment.backend;
    if (!backend.capabilities[call.capability]) {
      const embedOnly = backend.capabilities.embeddings
        ? " It is an embedding model: use /v1/embeddings."
        : "";
      throw invalidRequest(
        `The model '${call.model}' does not support ${CAPABILITY_NAMES[call.capability]}.${embedOnly}`,
        "model",
      );
    }
    const request = withPriority(call.toRequest(deployment), call.priority);
    assertSupported(request, backend.capabilities, call.model);
    return { deployment, request };
  }

  private tokenizerOf(
    principal: Principal,
    model: string,
  ): Required<Pick<ModelBackend, "tokenize" | "detokenize">> {
    const deployment = this.deps.registry.resolve(model);
    assertMayUseModel(principal, deployment, model);
    const { tokenize, detokenize } = deployment.backend;
    if (!tokenize || !detokenize) {
      throw invalidRequest(`The model '${model}' does not offer its tokenizer.`, "model");
    }
    return { tokenize: tokenize.bind(deployment.backend), detokenize: detokenize.bind(deployment.backend) };
  }
}

/**
 * A backend's parts, each shown to `see` (telemetry, usage) as it passes. The backend's generation
 * starts at the first next(). An iterator written out rather than an async generator around a
 * for-await: the same parts, ends and errors, without a generator step (and its extra await of
 * each yielded part) per part. Calls made while a next() is pending wait for it, as a
 * generator's would.
 */
class ObservedParts implements AsyncIterableIterator<GenerationPart>, DrainableParts {
  /** The caller takes the answer whole; set before the first next(). */
  whole = false;
  private source: AsyncIterator<GenerationPart> | undefined;
  private finished = false;
  /** next() calls not yet settled, and the last of them. */
  private running = 0;
  private last: Promise<IteratorResult<GenerationPart>> | undefined;

  constructor(
    private readonly open: (whole: boolean) => AsyncIterator<GenerationPart>,
    private readonly see: (part: GenerationPart) => void,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<GenerationPart>> {
    const queued = this.running > 0 ? this.last : undefined;
    this.running++;
    const step = queued ? queued.then(this.step, this.step) : this.step();
    this.last = step;
    return step;
  }

  async return(): Promise<IteratorResult<GenerationPart>> {
    if (this.running > 0) await this.last?.catch(() => {});
    if (!this.finished) {
      this.finished = true;
      // As a for-await left early: the backend's iterator is told, unless it never started.
      await this.source?.return?.(undefined);
    }
    return { done: true, value: undefined };
  }

  /**
   * Every part, to the end, in place of next() (DrainableParts): drained from the backend where it
   * can, each part seen as next() would. The first is seen as it arrives (its time is the time to
   * first token), the rest once they are all in.
   */
  async drain(first?: (part: GenerationPart) => void): Promise<GenerationPart[]> {
    if (this.running > 0) await this.last?.catch(() => {});
    if (this.finished) return [];
    this.running++;
    let all: GenerationPart[];
    try {
      this.source ??= this.open(this.whole);
      all = await drainParts(this.source, (part) => {
        this.see(part);
        first?.(part);
      });
    } finally {
      this.running--;
      this.finished = true;
    }
    // The first part (all[0]: a drain tells of it as it arrives) was seen already.
    for (let i = 1; i < all.length; i++) this.see(all[i] as GenerationPart);
    return all;
  }

  /** Promise callbacks rather than an async function: one promise per part, no async frame. */
  private readonly step = (): Promise<IteratorResult<GenerationPart>> => {
    if (this.finished) {
      this.running--;
      return Promise.resolve({ done: true, value: undefined });
    }
    let pending: Promise<IteratorResult<GenerationPart>>;
    try {
      this.source ??= this.open(this.whole);
      pending = this.source.next();
    } catch (err) {
      this.running--;
      this.finished = true;
      return Promise.reject(err);
    }
    return pending.then(this.passed, this.failed);
  };

  private readonly passed = (result: IteratorResult<GenerationPart>): IteratorResult<GenerationPart> => {
    this.running--;
    if (result.done) {
      this.finished = true;
      return { done: true, value: undefined };
    }
    this.see(result.value);
    return result;
  };

  /** A source that threw is done: it is not asked to return. */
  private readonly failed = (err: unknown): never => {
    this.running--;
    this.finished = true;
    throw err;
  };
}

/** The request as the caller's priority has it (interactive unless said otherwise). */
function withPriority<T extends { priority?: RequestPriority }>(
  request: T,
  priority: RequestPriority | undefined,
): T {
  return priority === undefined ? request : { ...request, priority };
}

function statusFor(error: unknown): number {
  return error instanceof ServiceError ? statusOf(error.kind) : 500;
}

/**
 * Runs a generation to its end and collects it with `collect` (an encoder's accumulator), for
 * callers with no stream to write: non-streaming responses, batch lines, assistants runs.
 */
export async function collectGeneration<T>(
  generation: Generation,
  signal: Pick<Cancellation, "aborted">,
  collect: (parts: readonly GenerationPart[]) => T,
): Promise<T> {
  try {
    const result = collect(await generation.wholeParts());
    // A cut generation (caller gone, or shutdown out of patience) must not pass for a success.
    if (signal.aborted) throw serviceUnavailable("The request was cancelled before it completed.");
    await generation.end();
    return result;
  } catch (err) {
    await generation.end({ error: err });
    throw err;
  }
}
