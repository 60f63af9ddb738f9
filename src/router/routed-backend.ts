import { ServiceError } from "../core/errors.js";
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
  UsageCounts,
} from "../core/generation.js";
import { estimateEmbedding } from "../core/token-estimate.js";
import type { Admitted } from "./deployment-state.js";
import { canServe, type DeploymentTarget, orderTargets, unionOf } from "./deployment-target.js";
import { backoffMs, isCallerFault, isRetryable, requestedDelayMs } from "./retry-delay.js";

/** Time as the router uses it; tests give their own, so no test waits on a real clock. */
export interface RouterTiming {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  random(): number;
}

export const realTiming: RouterTiming = {
  now: Date.now,
  random: Math.random,
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    }),
};

export interface RoutedModelOptions {
  id: string;
  balance: "weighted" | "least_in_flight";
  deadlineMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** The part of a deployment's rpm / tpm caps batch requests may fill (router.batch_rate_share). */
  batchRateShare: number;
  /** The models to fall back on, in order, looked up when needed (they may be defined later). */
  fallbacks: () => ModelBackend[];
  timing: RouterTiming;
}

/** A request prepared against one deployment; the attempt that serves it may prepare again elsewhere. */
class RoutedPreparedGeneration implements PreparedGeneration {
  current: PreparedGeneration;
  /** The first prepared request is used by at most one attempt; a retry prepares afresh. */
  firstUnused = true;
  constructor(
    readonly request: GenerationRequest,
    readonly first: { backend: ModelBackend; prepared: PreparedGeneration },
  ) {
    this.current = first.prepared;
  }
  get estimate(): CostEstimate {
    return this.first.prepared.estimate;
  }
  get progress(): UsageCounts {
    return this.current.progress;
  }
}

interface OpenedStream {
  first: IteratorResult<GenerationPart>;
  rest: AsyncIterator<GenerationPart>;
  /** The deployment answering and its admission; none when a fallback model answers. */
  served?: { target: DeploymentTarget; admission: Admitted };
}

/** Tokens a request may use at most: what the tpm caps reserve up front. */
function reservedTokens(estimate: CostEstimate): number {
  return estimate.promptTokens + estimate.maxTokensPerChoice * estimate.choices;
}

const deadlineExceeded = () =>
  new ServiceError("gateway_timeout", "No deployment of the model answered within its deadline.", {
    code: "upstream_timeout",
    hints: { "x-should-retry": "true" },
  });

const noDeployment = (model: string) =>
  new ServiceError("unavailable", `No deployment of the model '${model}' can take the request now.`, {
    code: "no_deployment_available",
    hints: { "x-should-retry": "true" },
  });

/**
 * A public model over several deployments. Each request tries deployments in balance order; a
 * retryable failure is retried with backoff (or the wait the upstream asked for) up to the
 * deployment's max_retries, then the next deployment, then the fallback models — all inside the
 * deadline. Once the first part is out, the answer is committed: a later failure ends the stream
 * with an error, never a second answer spliced onto the first.
 */
export class RoutedBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities;

  constructor(
    readonly targets: readonly DeploymentTarget[],
    private readonly options: RoutedModelOptions,
  ) {
    this.capabilities = unionOf(targets.map((t) => t.backend.capabilities));
  }

  async prepare(request: GenerationRequest): Promise<PreparedGeneration> {
    let firstError: unknown;
    const ordered = orderTargets(this.targets, this.options.balance, this.options.timing.random);
    for (const target of ordered) {
      if (!canServe(target.backend.capabilities, request)) continue;
      try {
        const prepared = await target.backend.prepare(request);
        return new RoutedPreparedGeneration(request, { backend: target.backend, prepared });
      } catch (err) {
        firstError ??= err;
      }
    }
    throw firstError ?? noDeployment(this.options.id);
  }

  generate(prepared: PreparedGeneration, signal: AbortSignal): AsyncIterableIterator<GenerationPart> {
    return new RoutedStream((p) => this.open(p, signal, true), prepared as RoutedPreparedGeneration, signal);
  }

  /** This model's own deployments, without its fallbacks (when it is itself a fallback). */
  generateWithoutFallbacks(
    prepared: PreparedGeneration,
    signal: AbortSignal,
  ): AsyncIterableIterator<GenerationPart> {
    return new RoutedStream((p) => this.open(p, signal, false), prepared as RoutedPreparedGeneration, signal);
  }

  /** Tries deployments (then fallbacks) until one yields a first part; throws the last failure. */
  private async open(
    routed: RoutedPreparedGeneration,
    signal: AbortSignal,
    withFallbacks: boolean,
  ): Promise<OpenedStream> {
    const { timing } = this.options;
    const deadlineAt = timing.now() + this.options.deadlineMs;
    // Attempts are cut at the deadline; the committed answer is not (the controller is dropped).
    const attempts = new AbortController();
    const onAbort = () => attempts.abort(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    let deadlineHit = false;
    const timer = setTimeout(() => {
      deadlineHit = true;
      attempts.abort(deadlineExceeded());
    }, this.options.deadlineMs);
    const committed = (stream: OpenedStream): OpenedStream => {
      clearTimeout(timer);
      // The caller's signal keeps reaching the committed attempt through `attempts`.
      return stream;
    };
    const request = routed.request;
    let lastError: unknown;
    try {
      for (const target of orderTargets(this.targets, this.options.balance, timing.random)) {
        if (!canServe(target.backend.capabilities, request)) continue;
        for (let attempt = 0; ; attempt++) {
          if (signal.aborted) throw signal.reason;
          if (deadlineHit || timing.now() >= deadlineAt) throw lastError ?? deadlineExceeded();
          // Batch lines may take only their share of a deployment's rpm / tpm: the rest stays for online traffic.
          const share = request.priority === "batch" ? this.options.batchRateShare : 1;
          const admission = await target.state.admit(reservedTokens(routed.estimate), share);
          // Open, probed by another request, or at its cap: the next deployment may answer now.
          if (!admission.admitted) break;
          target.inFlight++;
          try {
            const reuse = routed.firstUnused && routed.first.backend === target.backend;
            routed.firstUnused = false;
            const prepared = reuse ? routed.first.prepared : await target.backend.prepare(request);
            routed.current = prepared;
            const rest = target.backend.generate(prepared, attempts.signal)[Symbol.asyncIterator]();
            const first = await rest.next();
            target.state.succeeded(admission);
            target.attempts.succeeded++;
            return committed({ first, rest, served: { target, admission } });
          } catch (err) {
            target.inFlight--;
            // Nothing was answered: the tokens reserved against the tpm cap go back.
            target.state.settle(admission, 0);
            if (signal.aborted) {
              target.state.released(admission);
              throw err;
            }
            if (deadlineHit) {
              await target.state.failed(admission);
              target.attempts.failed++;
              throw deadlineExceeded();
            }
            if (isCallerFault(err)) {
              target.state.released(admission);
              throw err;
            }
            await target.state.failed(admission);
            target.attempts.failed++;
            lastError = err;
            if (!isRetryable(err) || attempt >= target.maxRetries) break;
            const delay =
              requestedDelayMs(err) ??
              backoffMs(attempt, this.options.retryBaseMs, this.options.retryMaxMs, timing.random);
            // A wait that would outlast the deadline is not waited: the next deployment may answer now.
            if (timing.now() + delay >= deadlineAt) break;
            await timing.sleep(delay, attempts.signal);
          }
        }
      }
      if (withFallbacks) {
        for (const fallback of this.options.fallbacks()) {
          if (signal.aborted) throw signal.reason;
          if (deadlineHit || timing.now() >= deadlineAt) throw lastError ?? deadlineExceeded();
          try {
            const prepared = await fallback.prepare(request);
            routed.current = prepared;
            const parts =
              fallback instanceof RoutedBackend
                ? fallback.generateWithoutFallbacks(prepared, attempts.signal)
                : fallback.generate(prepared, attempts.signal);
            const rest = parts[Symbol.asyncIterator]();
            return committed({ first: await rest.next(), rest });
          } catch (err) {
            if (signal.aborted) throw err;
            if (deadlineHit) throw deadlineExceeded();
            lastError = err;
          }
        }
      }
      throw lastError ?? noDeployment(this.options.id);
    } catch (err) {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      throw err;
    }
  }

  async prepareEmbedding(req: EmbeddingRequest): Promise<PreparedEmbedding> {
    return { request: req, estimate: estimateEmbedding(req) };
  }

  async embed(prepared: PreparedEmbedding, signal: AbortSignal): Promise<EmbeddingResult> {
    let lastError: unknown;
    for (const target of orderTargets(this.targets, this.options.balance, this.options.timing.random)) {
      const backend = target.backend;
      if (!backend.capabilities.embeddings || !backend.embed || !backend.prepareEmbedding) continue;
      const admission = await target.state.admit(prepared.estimate.promptTokens);
      if (!admission.admitted) continue;
      target.inFlight++;
      try {
        const result = await backend.embed(await backend.prepareEmbedding(prepared.request), signal);
        target.state.succeeded(admission);
        target.attempts.succeeded++;
        target.state.settle(admission, result.promptTokens);
        return result;
      } catch (err) {
        target.state.settle(admission, 0);
        if (signal.aborted || isCallerFault(err)) {
          target.state.released(admission);
          throw err;
        }
        await target.state.failed(admission);
        target.attempts.failed++;
        lastError = err;
      } finally {
        target.inFlight--;
      }
    }
    throw lastError ?? noDeployment(this.options.id);
  }

  /** The smallest of the embedding deployments' limits (any may answer); unknown while one is. */
  embeddingInputLimit(): number | undefined {
    let limit = Number.POSITIVE_INFINITY;
    for (const { backend } of this.targets) {
      if (!backend.capabilities.embeddings) continue;
      const own = backend.embeddingInputLimit ? backend.embeddingInputLimit() : Number.POSITIVE_INFINITY;
      if (own === undefined) return undefined;
      limit = Math.min(limit, own);
    }
    return limit;
  }

  async ready(): Promise<void> {}

  isReady(): boolean {
    return true;
  }

  health(): BackendHealth {
    const deployments = this.targets.map((t) => t.report());
    const serving = deployments.some((d) => d.circuit !== "open");
    return { loaded: true, serving, deployments };
  }

  stats(): BackendStats {
    let busy = 0;
    for (const target of this.targets) busy += target.inFlight;
    return { slots: 0, busySlots: busy, queued: 0 };
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.targets.filter((t) => t.owned).map((t) => t.backend.close()));
  }
}

/**
 * The parts of a routed answer: the first part of the attempt that answered (the answer is then
 * committed), then the rest of that attempt's parts. Its end — whole, failed or given up by the
 * consumer — settles the deployment's books once: in flight, the circuit (a break after the answer
 * began is still the deployment's failure) and the tokens reserved against its tpm cap. An iterator
 * written out rather than an async generator: it passes each part on without a generator step of
 * its own.
 */
class RoutedStream implements AsyncIterableIterator<GenerationPart> {
  private opened: OpenedStream | undefined;
  private firstSent = false;
  private ended = false;

  constructor(
    private readonly open: (routed: RoutedPreparedGeneration) => Promise<OpenedStream>,
    private readonly routed: RoutedPreparedGeneration,
    private readonly signal: AbortSignal,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<GenerationPart>> {
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    // Past the first part (every part but one), promise callbacks rather than an async function.
    if (this.opened && this.firstSent) return this.opened.rest.next().then(this.passOn, this.failed);
    return this.first();
  }

  private async first(): Promise<IteratorResult<GenerationPart>> {
    if (!this.opened) this.opened = await this.open(this.routed);
    const opened = this.opened;
    if (!this.firstSent) {
      this.firstSent = true;
      if (!opened.first.done) return opened.first;
      await this.end(false);
      return opened.first;
    }
    return this.opened.rest.next().then(this.passOn, this.failed);
  }

  private readonly passOn = (
    next: IteratorResult<GenerationPart>,
  ): IteratorResult<GenerationPart> | Promise<IteratorResult<GenerationPart>> =>
    next.done ? this.end(false).then(() => next) : next;

  private readonly failed = async (err: unknown): Promise<never> => {
    await this.end(!this.signal.aborted);
    throw err;
  };

  async return(): Promise<IteratorResult<GenerationPart>> {
    if (this.opened && !this.ended) await this.end(false);
    this.ended = true;
    return { done: true, value: undefined };
  }

  private async end(failed: boolean): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const opened = this.opened as OpenedStream;
    await opened.rest.return?.(undefined);
    const served = opened.served;
    if (!served) return;
    const { target, admission } = served;
    target.inFlight--;
    // Its probe, if it was one, already closed the circuit when the answer began.
    if (failed) await target.state.failed({ ...admission, probe: false });
    const used = this.routed.current.progress;
    target.state.settle(admission, used.promptTokens + used.completionTokens);
  }
}
