import type { Cancellation } from "../../core/cancellation.js";
import type { DrainableParts } from "../../core/drain-parts.js";
import type { GenerationPart, UsageCounts } from "../../core/generation.js";
import { charsToTokens } from "./prompt-estimate.js";
import type { StreamDecoder } from "./provider-adapter.js";
import { type EventSourceMessage, SseReader } from "./sse-events.js";
import { upstreamTransportError } from "./upstream-errors.js";
import type { UpstreamResponse } from "./upstream-response.js";

/** What one answer needs from its backend: the request to send and the books to keep. */
export interface UpstreamPartsSource {
  /** Sends the request; settles with the answer's body to read. */
  send(): Promise<UpstreamResponse>;
  decoder: StreamDecoder;
  progress: UsageCounts;
  /** The prompt as estimated: counted as consumed once the upstream accepts the request. */
  promptTokens: number;
  cancel: Cancellation;
  /** The answer starts (at the first next()) and ends (whole, failed or left): in-flight books. */
  started(): void;
  ended(): void;
}

const NO_EVENTS: readonly EventSourceMessage[] = [];
const NO_PARTS: readonly GenerationPart[] = [];
const DONE: IteratorResult<GenerationPart> = Object.freeze({ done: true, value: undefined });

/**
 * One upstream answer as parts: the request goes out at the first next(), the body is read once,
 * each event decoded into parts (counted into the live usage as the event is read), and the
 * decoder's closing parts follow a whole answer. It behaves as the async generator it replaces —
 * the same parts, errors, early leave (return() drops the body and its connection) and order of
 * calls — without a generator step and its promises per part: most parts come out of an array.
 */
export class UpstreamParts implements AsyncIterableIterator<GenerationPart>, DrainableParts {
  /** new → reading (the body) → closing (the decoder's last parts) → done. */
  private phase: "new" | "reading" | "closing" | "done" = "new";
  private response: UpstreamResponse | undefined;
  private readonly reader = new SseReader();
  private events: readonly EventSourceMessage[] = NO_EVENTS;
  private eventAt = 0;
  private parts: readonly GenerationPart[] = NO_PARTS;
  private partAt = 0;
  /** The body's end was read (and the reader told). */
  private bodyEnded = false;
  /** next() calls not yet settled, and the last of them: calls wait for the one before. */
  private running = 0;
  private last: Promise<IteratorResult<GenerationPart>> | undefined;

  constructor(private readonly source: UpstreamPartsSource) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<GenerationPart>> {
    if (this.running === 0) return this.step();
    // A call made while a read is pending waits for it, as a generator's would.
    return this.track(this.last?.then(this.step, this.step) ?? this.step());
  }

  async return(): Promise<IteratorResult<GenerationPart>> {
    if (this.running > 0) await this.last?.catch(() => {});
    // Left while reading: the body is not wanted. Before the first next() nothing was started.
    if (this.phase === "reading") this.response?.abandon();
    if (this.phase !== "new" && this.phase !== "done") this.source.ended();
    this.phase = "done";
    return DONE;
  }

  /** Only steps that wait (a read, the request) are tracked: a part from the array is not. */
  private track(step: Promise<IteratorResult<GenerationPart>>): Promise<IteratorResult<GenerationPart>> {
    this.running++;
    this.last = step;
    step.then(this.settled, this.settled);
    return step;
  }

  private readonly settled = () => {
    this.running--;
  };

  private readonly step = (): Promise<IteratorResult<GenerationPart>> => {
    const ready = this.fromArray();
    if (ready) return Promise.resolve(ready);
    switch (this.phase) {
      case "new":
        return this.track(this.open());
      case "reading":
        return this.track(this.read());
      default:
        return Promise.resolve(DONE);
    }
  };

  /** The next part of the array in hand, or the end once the closing parts are out; else undefined. */
  private fromArray(): IteratorResult<GenerationPart> | undefined {
    if (this.partAt < this.parts.length) {
      const part = this.parts[this.partAt++] as GenerationPart;
      // The closing parts are counted as they go out, the body's as their event is read.
      if (this.phase === "closing") countProgress(this.source.progress, part);
      return { done: false, value: part };
    }
    if (this.phase !== "closing") return undefined;
    this.end();
    return DONE;
  }

  private async open(): Promise<IteratorResult<GenerationPart>> {
    this.phase = "reading";
    this.source.started();
    try {
      this.response = await this.source.send();
    } catch (err) {
      this.end();
      throw err;
    }
    // Sent and accepted: the prompt counts as consumed from here, until the upstream says more.
    this.source.progress.promptTokens = this.source.promptTokens;
    return this.read();
  }

  /** The next event's parts, reading the body as far as needed; then the answer's close. */
  private async read(): Promise<IteratorResult<GenerationPart>> {
    const response = this.response as UpstreamResponse;
    try {
      for (;;) {
        const decoded = this.decodeInHand();
        if (decoded) return decoded;
        if (this.source.decoder.complete || this.bodyEnded) break;
        const chunk = await response.read();
        this.eventAt = 0;
        if (chunk) this.events = this.reader.feed(chunk);
        else {
          // An event not terminated by a blank line is incomplete; the reader drops it.
          this.bodyEnded = true;
          this.events = this.reader.end();
        }
      }
    } catch (err) {
      this.fail(err);
    }
    return this.close();
  }

  /**
   * The next part from the events read already, decoding as few of them as it takes (each one's
   * parts counted into the live usage as it is decoded); undefined when they hold no more.
   */
  private decodeInHand(): IteratorResult<GenerationPart> | undefined {
    const { decoder, progress } = this.source;
    while (!decoder.complete && this.eventAt < this.events.length) {
      const parts = decoder.read(this.events[this.eventAt++] as EventSourceMessage);
      for (const part of parts) countProgress(progress, part);
      if (parts.length > 0) {
        this.parts = parts;
        this.partAt = 1;
        return { done: false, value: parts[0] as GenerationPart };
      }
    }
    return undefined;
  }

  /** The body is read to its end (or the decoder is complete): the decoder's closing parts follow. */
  private close(): Promise<IteratorResult<GenerationPart>> {
    const response = this.response as UpstreamResponse;
    // The answer is whole unless the caller cut it.
    if (this.source.cancel.aborted) {
      response.abandon();
      this.end();
      return Promise.resolve(DONE);
    }
    response.release();
    this.phase = "closing";
    let closing: GenerationPart[];
    try {
      closing = this.source.decoder.finish();
    } catch (err) {
      this.end();
      throw err;
    }
    this.parts = closing;
    this.partAt = 0;
    return this.step();
  }

  /** A failure while reading: the body is dropped, and an error of the connection's is named so. */
  private fail(err: unknown): never {
    (this.response as UpstreamResponse).abandon();
    this.end();
    if (this.source.cancel.aborted || isServiceError(err)) throw err;
    throw upstreamTransportError(err);
  }

  /**
   * Every part left, to the answer's end (DrainableParts): the parts of the events in hand are
   * taken without a promise each; only a read of the body (or the request) is waited for.
   */
  async drain(first?: (part: GenerationPart) => void): Promise<GenerationPart[]> {
    const all: GenerationPart[] = [];
    let next = await this.next();
    if (!next.done) first?.(next.value);
    while (!next.done) {
      all.push(next.value);
      next = this.takeInHand() ?? (await this.next());
    }
    return all;
  }

  /** What next() would settle with, where it needs no read: undefined where it does. */
  private takeInHand(): IteratorResult<GenerationPart> | undefined {
    if (this.running > 0) return undefined;
    const ready = this.fromArray();
    if (ready || this.phase !== "reading") return ready;
    try {
      return this.decodeInHand();
    } catch (err) {
      this.fail(err);
    }
  }

  private end(): void {
    if (this.phase === "done") return;
    this.phase = "done";
    this.parts = NO_PARTS;
    this.partAt = 0;
    this.source.ended();
  }
}

export function countProgress(progress: UsageCounts, part: GenerationPart): void {
  if (part.type === "usage") {
    progress.promptTokens = part.promptTokens;
    progress.completionTokens = part.completionTokens;
    progress.cachedTokens = part.cachedTokens;
  } else if (part.type === "text" || part.type === "reasoning" || part.type === "refusal") {
    progress.completionTokens += charsToTokens(part.text.length);
  } else if (part.type === "tool-call") {
    progress.completionTokens += charsToTokens(part.argumentsDelta.length);
  }
}

function isServiceError(err: unknown): boolean {
  return (err as { name?: unknown } | undefined)?.name === "ServiceError";
}
