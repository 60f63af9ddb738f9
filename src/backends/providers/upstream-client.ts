import { Pool } from "undici";
import type { Cancellation } from "../../core/cancellation.js";
import { redactSecrets } from "./secret-redaction.js";
import {
  retryAfterMs,
  upstreamProtocolError,
  upstreamStatusError,
  upstreamTransportError,
} from "./upstream-errors.js";
import { headerValue, type ResponseHead, UpstreamResponse } from "./upstream-response.js";

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
   * `cancel` cuts the exchange at any point.
   */
  async post(path: string, body: unknown, cancel: Cancellation, query = ""): Promise<UpstreamResponse> {
    const response = new UpstreamResponse(cancel);
    let head: ResponseHead;
    try {
      this.pool.dispatch(
        {
          path: `${this.basePath}${path}${query}`,
          method: "POST",
          headers: this.headers,
          body: JSON.stringify(body),
        },
        response,
      );
      head = await response.head;
    } catch (err) {
      if (cancel.aborted) throw err;
      throw upstreamTransportError(err);
    }
    if (head.statusCode < 400) return response;
    const header = (name: string) => headerValue(head.rawHeaders, name);
    const text = await readBounded(response, 64 * 1024).catch(() => "");
    throw upstreamStatusError(head.statusCode, this.redact(this.messageOf(text)), retryAfterMs(header));
  }

  /** POSTs JSON and reads a JSON answer (embeddings). */
  async postJson(path: string, body: unknown, cancel: Cancellation): Promise<unknown> {
    const response = await this.post(path, body, cancel);
    const chunks: Buffer[] = [];
    try {
      for (let chunk = await response.read(); chunk; chunk = await response.read()) chunks.push(chunk);
    } catch (err) {
      response.abandon();
      if (cancel.aborted) throw err;
      throw upstreamTransportError(err);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      // The upstream's fault, as a malformed event in a stream is: a 502 another attempt may get past.
      throw upstreamProtocolError("an answer that is not JSON");
    }
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
    return message === undefined ? undefined : redactSecrets(message, this.options.secrets);
  }
}

function clipMessage(message: string): string {
  return message.length > 512 ? `${message.slice(0, 512)}…` : message;
}

async function readBounded(response: UpstreamResponse, max: number): Promise<string> {
  let text = "";
  for (let chunk = await response.read(); chunk; chunk = await response.read()) {
    text += chunk.toString("utf8");
    if (text.length > max) {
      response.abandon();
      break;
    }
  }
  return text;
}
