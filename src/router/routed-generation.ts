import type { Cancellation } from "../core/cancellation.js";
import { type DrainableParts, drainParts } from "../core/drain-parts.js";
import type {
  CostEstimate,
  GenerateOptions,
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
  /** `rest` where the attempt was gathered whole: its parts are at hand. */
  inHand?: PartsInHand;
  /** The deployment answering and its admission; none when a fallback model answers outside the router. */
  served?: Served;
}

const TAKEN_WHOLE: GenerateOptions = { whole: true };

/**
 * A request prepared against one deployment; the attempt that serves it may prepare again
 * elsewhere. It is also the router's call for a generation: an attempt is committed by its first
 * part, or, for a caller that takes the answer whole (nothing reaches its client before the end),
 * by its last: its parts are gathered first, so a failure anywhere before the end is retried.
 */
export class RoutedPreparedGeneration
  implements PreparedGeneration, RoutedCall<PreparedGeneration, OpenedStream>
{
  current: PreparedGeneration;
  /** The first prepared request is used by at most one attempt; a retry prepares afresh. */
  private firstUnused = true;
  /** The caller takes the answer whole (GenerateOptions.whole); set before the first attempt. */
  takenWhole = false;
  /** Told when an attempt gathered whole gets its first part (GenerateOptions.firstPart). */
  onFirstPart: (() => void) | undefined;
  /** What the client is charged for the current attempt, where it failed gathered whole. */
  private failedCharge: UsageCounts | undefined;
  constructor(
    readonly request: GenerationRequest,
    readonly first: { backend: ModelBackend; prepared: PreparedGeneration },
  ) {
    this.current = first.prepared;
  }
  get estimate(): CostEstimate {
    return this.first.prepared.estimate;
  }
  /**
   * What the request used, as the client is charged for it: the attempt answering. A failed
   * attempt gathered whole is charged as one that failed before its first part (its prompt, if the
   * upstream took it), never for what it generated: nothing of that reached the client.
   */
  get progress(): UsageCounts {
    return this.failedCharge ?? this.current.progress;
  }
  /** Tokens the request may use at most. */
  get reservedTokens(): number {
    const estimate = this.first.prepared.estimate;
    return estimate.promptTokens + estimate.maxTokensPerChoice * estimate.choices;
  }
  get batch(): boolean {
    return this.request.priority === "batch";
  }
  /** Taken whole, the answer is all in when an attempt commits: the caller's cancellation has no more to reach. */
  get streamed(): boolean {
    return !this.takenWhole;
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

  /**
   * What a failed attempt used at its deployment: its prompt once the upstream accepted it (a
   * streamed attempt that broke before its first part too), and, gathered whole, what it generated.
   */
  spent(prepared: PreparedGeneration): number {
    const used = prepared.progress;
    return used.promptTokens + used.completionTokens;
  }

  send(
    backend: ModelBackend,
    prepared: PreparedGeneration,
    attempts: Cancellation,
    served: Served | undefined,
    begun: () => void,
  ): Promise<OpenedStream> {
    if (prepared === this.first.prepared) this.firstUnused = false;
    this.current = prepared;
    this.failedCharge = undefined;
    if (this.takenWhole) return this.gather(backend, prepared, attempts, served, begun);
    return this.openStream(backend, prepared, attempts, served);
  }

  private async openStream(
    backend: ModelBackend,
    prepared: PreparedGeneration,
    attempts: Cancellation,
    served: Served | undefined,
  ): Promise<OpenedStream> {
    const rest = backend.generate(prepared, attempts)[Symbol.asyncIterator]();
    const first = await rest.next();
    return { first, rest, served };
  }

  /**
   * The attempt's parts, all of them, before it is committed. They are bounded by what the request
   * may generate (its max tokens), and the caller holds the same answer whole anyway.
   */
  private async gather(
    backend: ModelBackend,
    prepared: PreparedGeneration,
    attempts: Cancellation,
    served: Served | undefined,
    begun: () => void,
  ): Promise<OpenedStream> {
    let parts: GenerationPart[];
    try {
      const source = backend.generate(prepared, attempts, TAKEN_WHOLE)[Symbol.asyncIterator]();
      parts = await drainParts(source, () => {
        begun();
        this.onFirstPart?.();
      });
    } catch (err) {
      // Cut by the caller or the deadline, it is charged for what it used, as any call cut short.
      if (!attempts.aborted) this.failedCharge = promptOnly(prepared.progress);
      throw err;
    }
    // A backend that was cut may end early without an error: that answer is not whole.
    if (attempts.aborted) throw attempts.reason;
    const inHand = new PartsInHand(parts);
    return { first: inHand.take(), rest: inHand, inHand, served };
  }
}

function promptOnly(used: UsageCounts): UsageCounts {
  return { promptTokens: used.promptTokens, completionTokens: 0, cachedTokens: used.cachedTokens };
}

const DONE: IteratorResult<GenerationPart> = { done: true, value: undefined };

/** Parts gathered already, handed on one by one. */
class PartsInHand implements AsyncIterator<GenerationPart> {
  private at = 0;
  constructor(private readonly parts: readonly GenerationPart[]) {}

  take(): IteratorResult<GenerationPart> {
    if (this.at >= this.parts.length) return DONE;
    return { done: false, value: this.parts[this.at++] as GenerationPart };
  }

  /** Every part not taken yet, added to `into`. */
  takeRest(into: GenerationPart[]): void {
    while (this.at < this.parts.length) into.push(this.parts[this.at++] as GenerationPart);
  }

  next(): Promise<IteratorResult<GenerationPart>> {
    return Promise.resolve(this.take());
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
export class RoutedStream implements AsyncIterableIterator<GenerationPart>, DrainableParts {
  private opened: OpenedStream | undefined;
  private firstSent = false;
  private ended = false;

  constructor(
    private readonly open: (routed: RoutedPreparedGeneration) => Promise<OpenedStream>,
    private readonly routed: RoutedPreparedGeneration,
    private readonly cancel: Cancellation,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<GenerationPart>> {
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    // Past the first part (every part but one), promise callbacks rather than an async function.
    if (this.opened && this.firstSent) {
      const inHand = this.opened.inHand;
      if (inHand !== undefined) return this.fromHand(inHand);
      return this.opened.rest.next().then(this.passOn, this.failed);
    }
    return this.first();
  }

  /**
   * Every part left, to the end (DrainableParts). An attempt gathered whole hands its parts over
   * at once; a streamed one passes them on one next() at a time.
   */
  async drain(first?: (part: GenerationPart) => void): Promise<GenerationPart[]> {
    const all: GenerationPart[] = [];
    const next = await this.next();
    if (next.done) return all;
    first?.(next.value);
    all.push(next.value);
    const inHand = this.opened?.inHand;
    if (inHand === undefined) {
      for (let more = await this.next(); !more.done; more = await this.next()) all.push(more.value);
      return all;
    }
    inHand.takeRest(all);
    const ending = this.end(false);
    if (ending) await ending;
    return all;
  }

  /** Parts gathered whole: one settled promise each, no callback step. */
  private fromHand(inHand: PartsInHand): Promise<IteratorResult<GenerationPart>> {
    const next = inHand.take();
    return next.done ? this.endWith(next) : Promise.resolve(next);
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
    next.done ? this.endWith(next) : next;

  /** The end, then `last` (the source's own end). */
  private endWith(last: IteratorResult<GenerationPart>): Promise<IteratorResult<GenerationPart>> {
    const ending = this.end(false);
    return ending ? ending.then(() => last) : Promise.resolve(last);
  }

  private readonly failed = async (err: unknown): Promise<never> => {
    await this.end(!this.cancel.aborted);
    throw err;
  };

  async return(): Promise<IteratorResult<GenerationPart>> {
    if (this.opened && !this.ended) await this.end(false);
    this.ended = true;
    return { done: true, value: undefined };
  }

  /**
   * Settles the deployment's books, once. A promise only where there is something to wait for (a
   * source to close, a failure to record): parts gathered whole end without a tick.
   */
  private end(failed: boolean): Promise<void> | undefined {
    if (this.ended) return undefined;
    this.ended = true;
    const opened = this.opened as OpenedStream;
    const closing = opened.rest.return?.(undefined);
    if (closing || failed) return this.endAfter(closing, failed);
    this.settleBooks(false);
    return undefined;
  }

  private async endAfter(closing: Promise<unknown> | undefined, failed: boolean): Promise<void> {
    await closing;
    await this.settleBooks(failed);
  }

  private settleBooks(failed: boolean): Promise<void> | undefined {
    const served = (this.opened as OpenedStream).served;
    if (!served) return undefined;
    const { target, admission } = served;
    target.inFlight--;
    const used = this.routed.current.progress;
    const settle = () => target.state.settle(admission, used.promptTokens + used.completionTokens);
    if (!failed) {
      settle();
      return undefined;
    }
    // Its probe, if it was one, already closed the circuit when the answer began.
    return target.state.failed({ ...admission, probe: false }).then(settle);
  }
}
