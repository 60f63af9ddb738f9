import { type Cancellation, CancelSource } from "../core/cancellation.js";
import { ServiceError } from "../core/errors.js";
import type {
  BackendCapabilities,
  BackendHealth,
  BackendStats,
  EmbeddingRequest,
  EmbeddingResult,
  GenerateOptions,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedEmbedding,
  PreparedGeneration,
} from "../core/generation.js";
import { estimateEmbedding } from "../core/token-estimate.js";
import { DeadlineClock } from "./deadline-clock.js";
import { canServe, type DeploymentTarget, orderTargets, unionOf } from "./deployment-target.js";
import { backoffMs, isCallerFault, isOwnBug, isRetryable, requestedDelayMs } from "./retry-delay.js";
import type { RoutedCall } from "./routed-call.js";
import { RoutedEmbedding } from "./routed-embedding.js";
import { RoutedPreparedGeneration, RoutedStream } from "./routed-generation.js";

/** Time as the router uses it; tests give their own, so no test waits on a real clock. */
export interface RouterTiming {
  now(): number;
  /** Returns early when `cancel` is cut. */
  sleep(ms: number, cancel: Cancellation): Promise<void>;
  random(): number;
}

export const realTiming: RouterTiming = {
  now: Date.now,
  random: Math.random,
  sleep: (ms, cancel) =>
    new Promise((resolve) => {
      if (cancel.aborted) return resolve();
      const timer = setTimeout(done, ms);
      const unhook = cancel.onAbort(done);
      function done() {
        clearTimeout(timer);
        unhook();
        resolve();
      }
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

const noop = (): void => {};

const deadlineExceeded = () =>
  new ServiceError("gateway_timeout", "No deployment of the model answered within its deadline.", {
    code: "upstream_timeout",
    hints: { "x-should-retry": "true" },
  });

/** The order with the deployment whose backend the request is prepared for moved to the front. */
function preferredFirst(
  order: readonly DeploymentTarget[],
  preferred: ModelBackend | undefined,
): readonly DeploymentTarget[] {
  if (preferred === undefined || order[0]?.backend === preferred) return order;
  const at = order.findIndex((target) => target.backend === preferred);
  if (at < 0) return order;
  return [order[at] as DeploymentTarget, ...order.slice(0, at), ...order.slice(at + 1)];
}

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
 * with an error, never a second answer spliced onto the first. A caller that takes the answer
 * whole (GenerateOptions.whole) sees nothing before the end, so its answer is committed only once
 * it is whole, as embeddings' one body is: any failure before that may be retried.
 */
export class RoutedBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities;

  constructor(
    readonly targets: readonly DeploymentTarget[],
    private readonly options: RoutedModelOptions,
  ) {
    this.capabilities = unionOf(targets.map((t) => t.backend.capabilities));
  }

  /** Prepared for the first deployment in balance order that takes the request. */
  prepare(request: GenerationRequest): PreparedGeneration | Promise<PreparedGeneration> {
    const ordered = orderTargets(this.targets, this.options.balance, this.options.timing.random);
    const at = ordered.findIndex((target) => canServe(target.backend.capabilities, request));
    if (at < 0) throw noDeployment(this.options.id);
    const target = ordered[at] as DeploymentTarget;
    let prepared: PreparedGeneration | Promise<PreparedGeneration>;
    try {
      prepared = target.backend.prepare(request);
    } catch (err) {
      prepared = Promise.reject(err);
    }
    // Prepared at once (an upstream deployment): no promise on the request's path.
    if (!(prepared instanceof Promise))
      return new RoutedPreparedGeneration(request, { backend: target.backend, prepared });
    return this.prepareInOrder(request, ordered, at, prepared);
  }

  /** From `ordered[from]` on (its preparation under way), until a deployment takes the request. */
  private async prepareInOrder(
    request: GenerationRequest,
    ordered: readonly DeploymentTarget[],
    from: number,
    pending: Promise<PreparedGeneration>,
  ): Promise<PreparedGeneration> {
    // Where every deployment refuses, the client hears the first configured one, whatever the draw.
    let refusal: { at: number; err: unknown } | undefined;
    for (let i = from; i < ordered.length; i++) {
      const target = ordered[i] as DeploymentTarget;
      if (!canServe(target.backend.capabilities, request)) continue;
      try {
        const prepared = await (i === from ? pending : target.backend.prepare(request));
        return new RoutedPreparedGeneration(request, { backend: target.backend, prepared });
      } catch (err) {
        const at = this.targets.indexOf(target);
        if (!refusal || at < refusal.at) refusal = { at, err };
      }
    }
    throw refusal ? refusal.err : noDeployment(this.options.id);
  }

  generate(
    prepared: PreparedGeneration,
    cancel: Cancellation,
    options?: GenerateOptions,
  ): AsyncIterableIterator<GenerationPart> {
    const routed = prepared as RoutedPreparedGeneration;
    if (options?.whole) {
      routed.takenWhole = true;
      routed.onFirstPart = options.firstPart;
    }
    return new RoutedStream((call) => this.route(call, cancel, true), routed, cancel);
  }

  async prepareEmbedding(req: EmbeddingRequest): Promise<PreparedEmbedding> {
    return { request: req, estimate: estimateEmbedding(req) };
  }

  /** One non-streamed answer: retries go on until it is whole. */
  embed(prepared: PreparedEmbedding, cancel: Cancellation): Promise<EmbeddingResult> {
    return this.route(new RoutedEmbedding(prepared.request, prepared.estimate.promptTokens), cancel, true);
  }

  /**
   * Tries deployments (then fallbacks) until one commits an answer; throws the last failure. A
   * deployment that refuses the request (its provider has no place for `n`, `seed`, …) is passed
   * over without counting against it: the client sees the refusal only if every deployment refused.
   */
  private async route<P, R>(
    call: RoutedCall<P, R>,
    caller: Cancellation,
    withFallbacks: boolean,
    callerClock?: DeadlineClock,
  ): Promise<R> {
    const { timing } = this.options;
    // Attempts are cut by the caller and at the deadline; the committed answer only by the caller
    // (the clock is cleared). A CancelSource makes no AbortSignal: a hook on the caller's is all.
    const attempts = new CancelSource();
    const letGo = caller.aborted ? noop : caller.onAbort(() => attempts.abort(caller.reason));
    let deadlineHit = false;
    /** The caller went away (or shutdown gave up). */
    const callerGone = () => caller.aborted;
    const clock = new DeadlineClock(
      this.options.deadlineMs,
      timing.now,
      () => {
        deadlineHit = true;
        attempts.abort(deadlineExceeded());
      },
      callerClock,
    );
    let lastError: unknown;
    // The refusal the client hears if no deployment takes the request: the first configured one's.
    let refusal: unknown;
    let refusalAt = Number.POSITIVE_INFINITY;
    // Some deployment took the request: one that answers nothing now is no reason for a 400.
    let accepted = false;
    try {
      const order = orderTargets(this.targets, this.options.balance, timing.random);
      for (const target of preferredFirst(order, call.preferred)) {
        if (!call.serves(target.backend)) continue;
        for (let attempt = 0; ; attempt++) {
          if (callerGone()) throw caller.reason;
          if (deadlineHit || clock.passed()) throw lastError ?? deadlineExceeded();
          // Prepared before admission: a refusal takes no request from the caps and no probe.
          let prepared: P;
          try {
            const pending = call.prepareFor(target.backend);
            prepared = pending instanceof Promise ? await pending : pending;
          } catch (err) {
            if (callerGone() || isOwnBug(err)) throw err;
            if (!isCallerFault(err)) lastError = err;
            else if (this.targets.indexOf(target) < refusalAt) {
              refusal = err;
              refusalAt = this.targets.indexOf(target);
            }
            break;
          }
          accepted = true;
          // Batch lines may take only their share of a deployment's rpm / tpm: the rest stays for online traffic.
          const share = call.batch ? this.options.batchRateShare : 1;
          const admission = await target.state.admit(call.reservedTokens, share);
          // Open, probed by another request, or at its cap: the next deployment may answer now.
          if (!admission.admitted) break;
          target.inFlight++;
          try {
            const served = { target, admission };
            const answer = await call.send(target.backend, prepared, attempts, served, clock.stop);
            target.state.succeeded(admission);
            target.attempts.succeeded++;
            clock.clear();
            // The caller keeps reaching a committed stream through `attempts`.
            if (!call.streamed) letGo();
            return answer;
          } catch (err) {
            clock.resume();
            target.inFlight--;
            // Nothing was answered: the tokens reserved against the tpm cap go back, all but those
            // the attempt used up there (an answer taken whole may fail after it generated).
            target.state.settle(admission, call.spent(prepared));
            if (callerGone()) {
              target.state.released(admission);
              throw err;
            }
            if (deadlineHit) {
              await target.state.failed(admission);
              target.attempts.failed++;
              throw deadlineExceeded();
            }
            // The caller's mistake, or ours: no deployment would answer otherwise, and this one is not to blame.
            if (isCallerFault(err) || isOwnBug(err)) {
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
            if (clock.passed(delay)) break;
            await timing.sleep(delay, attempts);
          }
        }
      }
      if (withFallbacks) {
        for (const fallback of this.options.fallbacks()) {
          if (!(fallback instanceof RoutedBackend) && !call.serves(fallback)) continue;
          if (callerGone()) throw caller.reason;
          if (deadlineHit || clock.passed()) throw lastError ?? deadlineExceeded();
          try {
            const answer = await this.viaFallback(fallback, call, attempts, clock);
            clock.clear();
            if (!call.streamed) letGo();
            return answer;
          } catch (err) {
            clock.resume();
            if (callerGone() || isOwnBug(err)) throw err;
            if (deadlineHit) throw deadlineExceeded();
            if (isCallerFault(err)) refusal ??= err;
            else lastError = err;
          }
        }
      }
      throw lastError ?? (accepted ? undefined : refusal) ?? noDeployment(this.options.id);
    } catch (err) {
      clock.clear();
      letGo();
      throw err;
    }
  }

  /** A fallback model: a routed one over its own deployments (not its fallbacks), another as it is. */
  private async viaFallback<P, R>(
    fallback: ModelBackend,
    call: RoutedCall<P, R>,
    attempts: Cancellation,
    clock: DeadlineClock,
  ): Promise<R> {
    if (fallback instanceof RoutedBackend) return fallback.route(call, attempts, false, clock);
    return call.send(fallback, await call.prepareFor(fallback), attempts, undefined, clock.stop);
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
