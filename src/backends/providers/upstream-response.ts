import type { IncomingHttpHeaders } from "node:http";
import { type Dispatcher, errors } from "undici";

/** Body bytes held for the reader before the upstream's socket is paused (a stream's high-water mark). */
const HIGH_WATER_BYTES = 64 * 1024;
/** What is read of a successful answer's body after the answer is whole (its end), at most. */
const TAIL_LIMIT_BYTES = 64 * 1024;

export interface ResponseHead {
  statusCode: number;
  headers: IncomingHttpHeaders;
}

/**
 * One upstream request and its answer, driven by undici's dispatch handler: the status, the body's
 * chunks and the end arrive as calls and wait here for the one reader. undici's request() wraps
 * the same calls in a Readable stream per response, read through the stream's async iterator;
 * for the small answers a gateway mostly relays that machinery cost more than the HTTP itself.
 *
 * It behaves as request() with a signal did: aborted by the caller's signal at any point (with
 * its reason), a failure drops what was not read yet, `release()` reads the rest of a whole
 * answer in the background (so the kept-alive connection goes back to the pool) unless the body
 * is over 64 KiB, and `abandon()` drops the body and its connection.
 */
export class UpstreamResponse implements Dispatcher.DispatchHandler {
  /** Settles when the final status and headers arrive, or the request fails before they do. */
  readonly head: Promise<ResponseHead>;
  private resolveHead!: (head: ResponseHead) => void;
  private rejectHead!: (err: unknown) => void;
  private controller: Dispatcher.DispatchController | undefined;
  /** Why the caller's signal aborted, when it did before the request was on a connection. */
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

  constructor(signal: AbortSignal) {
    this.head = new Promise<ResponseHead>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    if (signal.aborted) {
      this.abortedBy = signal.reason ?? new errors.RequestAbortedError();
      return;
    }
    const onAbort = () => this.abort(signal.reason ?? new errors.RequestAbortedError());
    signal.addEventListener("abort", onAbort, { once: true });
    this.stopListening = () => signal.removeEventListener("abort", onAbort);
  }

  /** The next chunk of the body; undefined at its end. Throws what ended the exchange, if it failed. */
  async read(): Promise<Buffer | undefined> {
    for (;;) {
      // A failure drops what was not read yet, as a destroyed stream does.
      if (this.failure) throw this.failure.error;
      const chunk = this.queue.shift();
      if (chunk) {
        this.queuedBytes -= chunk.length;
        if (this.controller?.paused && this.queuedBytes < HIGH_WATER_BYTES) this.controller.resume();
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
      this.controller?.abort(new errors.RequestAbortedError());
      return;
    }
    if (this.controller?.paused) this.controller.resume();
  }

  /** The answer is not wanted (failed, or the caller left): the body and its connection are dropped. */
  abandon(): void {
    this.drop();
    if (this.ended || this.failure) return;
    this.controller?.abort(new errors.RequestAbortedError());
  }

  // ── undici's handler calls ───────────────────────────────────────────────────────────────────

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortedBy) controller.abort(this.abortedBy);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    // Informational (1xx) heads come before the final one.
    if (statusCode < 200) return;
    const length = Number(headers["content-length"]);
    if (Number.isFinite(length)) this.contentLength = length;
    this.resolveHead({ statusCode, headers });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bytesRead += chunk.length;
    if (this.settled) {
      if (this.bytesRead > TAIL_LIMIT_BYTES) controller.abort(new errors.RequestAbortedError());
      return;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes >= HIGH_WATER_BYTES) controller.pause();
    this.notify();
  }

  onResponseEnd(): void {
    this.ended = true;
    this.stopListening?.();
    this.notify();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.failure = { error };
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.stopListening?.();
    this.rejectHead(error);
    this.notify();
  }

  private abort(reason: Error): void {
    if (this.controller) this.controller.abort(reason);
    else this.abortedBy = reason;
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
