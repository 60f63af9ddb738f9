import type {
  CostEstimate,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedGeneration,
  UsageCounts,
} from "../core/generation.js";
import { canServe } from "./deployment-target.js";
import type { RoutedCall, Served } from "./routed-call.js";

export interface OpenedStream {
  first: IteratorResult<GenerationPart>;
  rest: AsyncIterator<GenerationPart>;
  /** The deployment answering and its admission; none when a fallback model answers outside the router. */
  served?: Served;
}

/**
 * A request prepared against one deployment; the attempt that serves it may prepare again
 * elsewhere. It is also the router's call for a generation: an attempt is committed by its first part.
 */
export class RoutedPreparedGeneration
  implements PreparedGeneration, RoutedCall<PreparedGeneration, OpenedStream>
{
  current: PreparedGeneration;
  /** The first prepared request is used by at most one attempt; a retry prepares afresh. */
  private firstUnused = true;
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
  /** Tokens the request may use at most. */
  get reservedTokens(): number {
    const estimate = this.first.prepared.estimate;
    return estimate.promptTokens + estimate.maxTokensPerChoice * estimate.choices;
  }
  get batch(): boolean {
    return this.request.priority === "batch";
  }
  get streamed(): boolean {
    return true;
  }
  get preferred(): ModelBackend | undefined {
    return this.firstUnused ? this.first.backend : undefined;
  }

  serves(backend: ModelBackend): boolean {
    return canServe(backend.capabilities, this.request);
  }

  prepareFor(backend: ModelBackend): PreparedGeneration | Promise<PreparedGeneration> {
    if (this.firstUnused && backend === this.first.backend) return this.first.prepared;
    return backend.prepare(this.request);
  }

  async send(
    backend: ModelBackend,
    prepared: PreparedGeneration,
    signal: AbortSignal,
    served: Served | undefined,
  ): Promise<OpenedStream> {
    if (prepared === this.first.prepared) this.firstUnused = false;
    this.current = prepared;
    const rest = backend.generate(prepared, signal)[Symbol.asyncIterator]();
    const first = await rest.next();
    return { first, rest, served };
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
export class RoutedStream implements AsyncIterableIterator<GenerationPart> {
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
