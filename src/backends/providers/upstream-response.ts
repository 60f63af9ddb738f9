import { type Dispatcher, errors } from "undici";
import type { Cancellation } from "../../core/cancellation.js";

/** Body bytes held for the reader before the upstream's socket is paused (a stream's high-water mark). */
const HIGH_WATER_BYTES = 64 * 1024;
/** What is read of a successful answer's body after the answer is whole (its end), at most. */
const TAIL_LIMIT_BYTES = 64 * 1024;

export interface ResponseHead {
  statusCode: number;
  /** The headers as they came: name, value, name, value… (read with headerValue). */
  rawHeaders: readonly Buffer[];
}

/** A header's first value in raw headers, by its lower-case name; undefined when absent. */
export function headerValue(rawHeaders: readonly Buffer[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const key = rawHeaders[i] as Buffer;
    if (key.length === name.length && key.toString("latin1").toLowerCase() === name) {
      return (rawHeaders[i + 1] as Buffer).toString("latin1");
    }
  }
  return undefined;
}

/** What the exchange is cut with: the caller's reason (an Error, as AbortController.abort() gives). */
function whyCut(cancel: Cancellation): Error {
  return (cancel.reason as Error | undefined) ?? new errors.RequestAbortedError();
}

/**
 * One upstream request and its answer, driven by undici's dispatch handler: the status, the body's
 * chunks and the end arrive as calls and wait here for the one reader. undici's request() wraps
 * the same calls in a Readable stream per response, read through the stream's async iterator;
 * for the small answers a gateway mostly relays that machinery cost more than the HTTP itself.
 *
 * It implements undici's own handler interface (onConnect, onHeaders, onData, onComplete, onError):
 * the one its connections call. A handler written to the newer onRequestStart / onResponseStart
 * interface is wrapped into this one, and the wrapper parses every response's headers into an
 * object first (~2.5% of the gateway's CPU): this class reads the two or three headers it needs
 * from the raw ones, and only when it needs them.
 *
 * It behaves as request() with a signal did: aborted by the caller's cancellation at any point (with
 * its reason), a failure drops what was not read yet, `release()` reads the rest of a whole
 * answer in the background (so the kept-alive connection goes back to the pool) unless the body
 * is over 64 KiB, and `abandon()` drops the body and its connection.
 */
export class UpstreamResponse implements Dispatcher.DispatchHandler {
  /** Settles when the final status and headers arrive, or the request fails before they do. */
  readonly head: Promise<ResponseHead>;
  private resolveHead!: (head: ResponseHead) => void;
  private rejectHead!: (err: unknown) => void;
  /** Cuts the exchange (undici's abort, from onConnect). */
  private abortExchange: ((reason: Error) => void) | undefined;
  /** Starts the body flowing again after onData asked for a pause (from onHeaders). */
  private resumeBody: (() => void) | undefined;
  private paused = false;
  /** The exchange was cut by us (abort, release of a long body, abandon). */
  private cut = false;
  /** Why the caller cancelled, when it did before the request was on a connection. */
  private abortedBy: Error | undefined;
  private readonly stopListening: (() => void) | undefined;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private bytesRead = 0;
  private contentLength: number | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;
  /** The reader is waiting for a chunk, the end or a failure. */
  private wake: (() => void) | undefined;
  /** Released or abandoned: what still arrives is dropped. */
  private settled = false;

  /** Cut through a hook on `cancel` (no 'abort' listener: see core/cancellation). */
  constructor(cancel: Cancellation) {
    this.head = new Promise<ResponseHead>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    if (cancel.aborted) {
      this.abortedBy = whyCut(cancel);
      return;
    }
    this.stopListening = cancel.onAbort(() => this.abort(whyCut(cancel)));
  }

  /** The next chunk of the body; undefined at its end. Throws what ended the exchange, if it failed. */
  async read(): Promise<Buffer | undefined> {
    for (;;) {
      // A failure drops what was not read yet, as a destroyed stream does.
      if (this.failure) throw this.failure.error;
      const chunk = this.queue.shift();
      if (chunk) {
        this.queuedBytes -= chunk.length;
        if (this.paused && this.queuedBytes < HIGH_WATER_BYTES) this.resume();
        return chunk;
      }
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  /**
   * The answer is whole: the rest of the body (normally only the end of its chunked encoding) is
   * read and dropped in the background, so the connection is kept, and no abort error is built
   * for a body that simply ended. A body over 64 KiB in all is cut off instead.
   */
  release(): void {
    this.drop();
    if (this.ended || this.failure) return;
    if ((this.contentLength ?? 0) > TAIL_LIMIT_BYTES || this.bytesRead > TAIL_LIMIT_BYTES) {
      this.cutExchange(new errors.RequestAbortedError());
      return;
    }
    if (this.paused) this.resume();
  }

  /** The answer is not wanted (failed, or the caller left): the body and its connection are dropped. */
  abandon(): void {
    this.drop();
    if (this.ended || this.failure) return;
    this.cutExchange(new errors.RequestAbortedError());
  }

  // ── undici's handler calls ───────────────────────────────────────────────────────────────────

  onConnect(abort: (err?: Error) => void): void {
    this.abortExchange = abort;
    if (this.abortedBy) this.cutExchange(this.abortedBy);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // Informational (1xx) heads come before the final one.
    if (statusCode < 200) return true;
    this.resumeBody = resume;
    const length = Number(headerValue(rawHeaders, "content-length"));
    if (Number.isFinite(length)) this.contentLength = length;
    this.resolveHead({ statusCode, rawHeaders });
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytesRead += chunk.length;
    if (this.settled) {
      if (this.bytesRead > TAIL_LIMIT_BYTES) this.cutExchange(new errors.RequestAbortedError());
      return true;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.notify();
    if (this.queuedBytes < HIGH_WATER_BYTES) return true;
    this.paused = true;
    return false;
  }

  onComplete(): void {
    this.ended = true;
    this.stopListening?.();
    this.notify();
  }

  onError(error: Error): void {
    this.failure = { error };
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.stopListening?.();
    this.rejectHead(error);
    this.notify();
  }

  private abort(reason: Error): void {
    if (this.abortExchange) this.cutExchange(reason);
    else this.abortedBy = reason;
  }

  /** Cuts the exchange once; undici then reports it through onError. */
  private cutExchange(reason: Error): void {
    if (this.cut) return;
    this.cut = true;
    this.abortExchange?.(reason);
  }

  private resume(): void {
    this.paused = false;
    this.resumeBody?.();
  }

  private drop(): void {
    this.settled = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
