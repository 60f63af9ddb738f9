import type { ServerResponse } from "node:http";
import { CancelSource } from "../core/cancellation.js";
import { type ErrorBody, SHUTDOWN_STREAM_ERROR } from "./errors.js";

export interface SseOptions {
  /** Extra headers (request id, processing time, rate limits) sent with the 200. */
  headers?: Record<string, string>;
  /** A comment frame is sent after this much silence so proxies keep the connection open. */
  keepAliveMs?: number;
  /** A client that has not drained its socket buffer in this long is cut off, freeing its slot. */
  drainTimeoutMs?: number;
  /**
   * Aborted when the server stops waiting for in-flight work (shutdown grace over): an open stream
   * then ends with an error event, so a cut-short answer never ends in a `[DONE]` that reads as success.
   */
  cancel?: AbortSignal;
}

/**
 * Server-wide stream settings (from the config: sse_keep_alive_ms, sse_drain_timeout_ms): the app
 * holds them (request.server.streamPolicy) and every route's writer is made with them.
 */
export interface StreamPolicy {
  keepAliveMs: number;
  drainTimeoutMs: number;
  cancel?: AbortSignal;
}

const CANCELLED_FRAME = `data: ${JSON.stringify(SHUTDOWN_STREAM_ERROR)}\n\n`;

const DONE_FRAME = "data: [DONE]\n\n";

/** The stream's own headers: they win over a reply's header of the same name. */
const STREAM_HEADERS: readonly string[] = [
  "content-type",
  "text/event-stream; charset=utf-8",
  "cache-control",
  "no-cache",
  "connection",
  "keep-alive",
  "x-accel-buffering",
  "no",
];
const STREAM_HEADER_NAMES: ReadonlySet<string> = new Set(STREAM_HEADERS.filter((_, i) => i % 2 === 0));

/**
 * The headers of a stream's 200 as one flat list (name, value, name, value…), which writeHead
 * takes as it is. Not an object spread from the extra headers: on Node 20 that object, made per
 * stream and handed to writeHead, left ~1.1 KB of every streamed request surviving the young
 * generation's collections (c=1: ~1,370 B against ~270 B per request with this list; scavenges
 * paused ~3.6 ms against ~1.7; bench/RESULTS.md, session 8).
 */
function headerList(extra: Readonly<Record<string, string>> | undefined): string[] {
  const list = STREAM_HEADERS.slice();
  if (!extra) return list;
  for (const name of Object.keys(extra)) {
    if (!STREAM_HEADER_NAMES.has(name.toLowerCase())) list.push(name, extra[name] as string);
  }
  return list;
}
const KEEP_ALIVE_FRAME = ": keep-alive\n\n";

/**
 * The only place that writes server-sent events. It owns the headers, framing, keep-alive,
 * backpressure (a write waits for 'drain', bounded by a timeout so a reader that stops reading
 * cannot hold a model slot forever), disconnect detection, the error frame and `[DONE]`.
 */
export class SseWriter {
  private readonly res: ServerResponse;
  /**
   * Cut when the client goes away or stops reading. Its AbortSignal is made only when someone asks
   * for `signal`: one costs microseconds to create on Node 20, and most streams end without anyone
   * listening.
   */
  private readonly cut = new CancelSource();
  private readonly keepAliveMs: number;
  private readonly drainTimeoutMs: number;
  private readonly cancelSignal: AbortSignal | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private opened = false;
  private ended = false;
  /** Frames written in one tick leave in one write: the socket is corked until the tick ends. */
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.res.uncork();
  };

  constructor(
    res: ServerResponse,
    private readonly options: SseOptions = {},
  ) {
    this.res = res;
    const { keepAliveMs, drainTimeoutMs } = options;
    // The config is the one place these are set: a writer is given them (the app's stream policy).
    if (keepAliveMs === undefined || drainTimeoutMs === undefined)
      throw new Error("SseWriter needs keepAliveMs and drainTimeoutMs: the app's stream policy");
    this.keepAliveMs = keepAliveMs;
    this.drainTimeoutMs = drainTimeoutMs;
    this.cancelSignal = options.cancel;
    const cancelling = this.cancelSignal && SseWriter.openOn(this.cancelSignal);
    cancelling?.add(this);
    res.on("close", () => {
      cancelling?.delete(this);
      if (!this.ended) this.abort("client disconnected");
    });
  }

  /**
   * Per cancel signal (the server's shutdown), the writers made on it: one listener cancels them
   * all. A listener per stream on that long-lived signal cost a registration and a removal per
   * stream, and more than ten open streams set off Node's listener-leak warning.
   */
  private static readonly writersByCancel = new WeakMap<AbortSignal, Set<SseWriter>>();

  private static openOn(cancel: AbortSignal): Set<SseWriter> {
    let writers = SseWriter.writersByCancel.get(cancel);
    if (!writers) {
      const created = new Set<SseWriter>();
      cancel.addEventListener(
        "abort",
        () => {
          for (const writer of created) writer.cancel();
        },
        { once: true },
      );
      SseWriter.writersByCancel.set(cancel, created);
      writers = created;
    }
    return writers;
  }

  /** Aborted when the client goes away or stops reading. */
  get signal(): AbortSignal {
    return this.cut.signal;
  }

  /** Whether `signal` is aborted (without making the signal). */
  get aborted(): boolean {
    return this.cut.aborted;
  }

  get isOpen(): boolean {
    return this.opened && !this.ended && !this.cut.aborted;
  }

  open(): void {
    if (this.opened) return;
    this.opened = true;
    // The headers go out with the first frames written in this tick (the stream driver opens
    // once the first part is there), not in a write of their own.
    this.corkForTick();
    this.res.writeHead(200, headerList(this.options.headers));
    this.res.flushHeaders();
    this.armKeepAlive();
    if (this.cancelSignal?.aborted) this.cancel();
  }

  /** Sends one JSON event; resolves once the socket can take more (or the client is gone). */
  async send(payload: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** Sends an event whose JSON the caller already serialised (hot path: no object round trip). */
  async sendRaw(json: string): Promise<void> {
    await this.write(`data: ${json}\n\n`);
  }

  /**
   * A typed event (`event:` and optional `id:` lines before `data:`), as the Responses and
   * Assistants streams are: the official SDKs dispatch on the event name. `json` is already
   * serialised; names and ids never hold line breaks.
   */
  async sendEvent(event: string, json: string, id?: string): Promise<void> {
    if (/[\r\n]/.test(event) || (id !== undefined && /[\r\n]/.test(id))) {
      throw new Error("SSE event names and ids cannot hold line breaks");
    }
    await this.write(`${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${json}\n\n`);
  }

  /** An error after streaming began: an error frame and no [DONE], so no client mistakes it for success. */
  async fail(body: ErrorBody): Promise<void> {
    if (!this.isOpen) return this.end();
    await this.write(`data: ${JSON.stringify(body)}\n\n`);
    this.end();
  }

  async done(): Promise<void> {
    if (this.isOpen) await this.write(DONE_FRAME);
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.clearKeepAlive();
    // Ending a destroyed response would mark it finished, and a cut-off stream would then look
    // like one that completed (to the request's abort signal, the logs and the metrics).
    if (!this.res.writableEnded && !this.res.destroyed) this.res.end();
  }

  private async write(frame: string): Promise<void> {
    if (!this.isOpen) return;
    this.armKeepAlive();
    this.corkForTick();
    if (this.res.write(frame)) return;
    await this.waitForDrain();
  }

  /**
   * Holds writes until the current tick's work is done (process.nextTick runs after the promise
   * jobs in flight): parts that arrive together — one upstream chunk often holds several events,
   * and the last frames, [DONE] and the end come together — go out in one system call instead of
   * one each, and nothing waits beyond the tick it was written in. end() flushes at once.
   */
  private corkForTick(): void {
    if (this.corked) return;
    this.corked = true;
    this.res.cork();
    process.nextTick(this.uncork);
  }

  /** Shutdown stopped waiting: end with an error event (a client that is not reading is just cut off). */
  private cancel(): void {
    if (!this.opened || this.ended) return;
    this.ended = true;
    this.clearKeepAlive();
    if (this.res.writableNeedDrain) this.res.destroy();
    else this.res.end(CANCELLED_FRAME);
    this.abort("server shutting down");
  }

  private waitForDrain(): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.res.off("drain", finish);
        unhook();
        resolve();
      };
      const timer = setTimeout(() => {
        this.abort("client stopped reading");
        this.res.destroy();
        finish();
      }, this.drainTimeoutMs);
      this.res.on("drain", finish);
      const unhook = this.cut.onAbort(finish);
    });
  }

  private abort(reason: string): void {
    this.clearKeepAlive();
    if (!this.cut.aborted) this.cut.abort(new Error(reason));
  }

  /** Pushes the keep-alive back by a full interval; called on every write, so it reuses one timer. */
  private armKeepAlive(): void {
    if (this.keepAliveMs <= 0) return;
    if (this.keepAliveTimer) {
      this.keepAliveTimer.refresh();
      return;
    }
    this.keepAliveTimer = setTimeout(() => {
      this.keepAliveTimer = undefined;
      if (this.isOpen) void this.write(KEEP_ALIVE_FRAME);
    }, this.keepAliveMs);
    this.keepAliveTimer.unref();
  }

  private clearKeepAlive(): void {
    if (this.keepAliveTimer) clearTimeout(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }
}
