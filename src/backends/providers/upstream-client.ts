import { type Dispatcher, Pool } from "undici";
import { retryAfterMs, upstreamStatusError, upstreamTransportError } from "./upstream-errors.js";

export interface UpstreamClientOptions {
  /** The API root; requests go to paths under it. */
  baseUrl: string;
  /** Headers on every request: authentication and whatever the operator configured. */
  headers: Readonly<Record<string, string>>;
  /** Secrets that must never reach a message (the key, should an upstream echo it back). */
  secrets: readonly string[];
  maxConnections: number;
  /** Until the response's headers arrive. */
  timeoutMs: number;
  /** Between two chunks of the body. */
  idleTimeoutMs: number;
  /** Reads the upstream's error message out of its error body. */
  errorMessage(body: unknown): string | undefined;
}

/** What is read of a successful answer's body after the answer is whole (its end), at most. */
const TAIL_LIMIT_BYTES = 64 * 1024;

/**
 * A successful answer's body. Reading stops where the answer is whole (an end marker such as
 * `[DONE]`); what is left is settled with `release()` or, when the answer is not wanted, `abandon()`.
 */
export class UpstreamResponse {
  constructor(private readonly body: Dispatcher.ResponseData["body"]) {}

  /** The body's chunks; leaving the loop early neither ends nor destroys the body. */
  chunks(): AsyncIterable<Uint8Array> {
    return this.body.iterator({ destroyOnReturn: false });
  }

  /**
   * The answer is whole: the rest of the body (normally only the end of its chunked encoding) is
   * read in the background, so the kept-alive connection goes back to the pool instead of being
   * torn down, and no abort error is built for a body that simply ended.
   */
  release(): void {
    if (this.body.readableEnded) return;
    this.body.dump({ limit: TAIL_LIMIT_BYTES }).catch(() => {});
  }

  /** The answer is not wanted (failed, or the caller left): the body and its connection are dropped. */
  abandon(): void {
    // undici reports a body destroyed before its end as an 'error' (an abort): nobody is reading
    // it any more, and an error event without a listener would be an uncaught exception.
    this.body.on("error", () => {});
    this.body.destroy();
  }
}

/**
 * One upstream origin over a pool of kept-alive connections. The host is the configured base URL
 * and nothing else: callers give only a path under it.
 */
export class UpstreamClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: UpstreamClientOptions) {
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.pool = new Pool(url.origin, {
      connections: options.maxConnections,
      keepAliveTimeout: 30_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.idleTimeoutMs,
    });
    this.headers = { "content-type": "application/json", ...options.headers };
  }

  /**
   * POSTs JSON and returns the response body to read; an error status is read (bounded), mapped
   * to our errors and thrown. `query` is appended as it is (the caller builds it from config).
   */
  async post(path: string, body: unknown, signal: AbortSignal, query = ""): Promise<UpstreamResponse> {
    let response: Awaited<ReturnType<Pool["request"]>>;
    try {
      response = await this.pool.request({
        path: `${this.basePath}${path}${query}`,
        method: "POST",
        headers: this.headers,
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw upstreamTransportError(err);
    }
    if (response.statusCode < 400) return new UpstreamResponse(response.body);
    const header = (name: string) => {
      const value = response.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const text = await readBounded(response.body, 64 * 1024).catch(() => "");
    throw upstreamStatusError(response.statusCode, this.redact(this.messageOf(text)), retryAfterMs(header));
  }

  /** POSTs JSON and reads a JSON answer (embeddings). */
  async postJson(path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const response = await this.post(path, body, signal);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response.chunks()) chunks.push(Buffer.from(chunk));
    } catch (err) {
      response.abandon();
      if (signal.aborted) throw err;
      throw upstreamTransportError(err);
    }
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  private messageOf(text: string): string | undefined {
    try {
      const message = this.options.errorMessage(JSON.parse(text));
      return message === undefined ? undefined : clipMessage(message);
    } catch {
      return undefined;
    }
  }

  private redact(message: string | undefined): string | undefined {
    if (message === undefined) return undefined;
    let clean = message;
    for (const secret of this.options.secrets) if (secret) clean = clean.split(secret).join("[redacted]");
    return clean;
  }
}

function clipMessage(message: string): string {
  return message.length > 512 ? `${message.slice(0, 512)}…` : message;
}

async function readBounded(body: AsyncIterable<Uint8Array> & { destroy(): void }, max: number) {
  let text = "";
  for await (const chunk of body) {
    text += Buffer.from(chunk).toString("utf8");
    if (text.length > max) {
      body.destroy();
      break;
    }
  }
  return text;
}
