import { setTimeout as sleep } from "node:timers/promises";
import { Pool, errors as undiciErrors } from "undici";
import { linkSignals } from "../../../../core/linked-signal.js";
import type { EngineProcess } from "../process-supervisor.js";

/** How often /health is polled while llama-server loads. */
const HEALTH_POLL_MS = 25;

/**
 * HTTP to one llama-server process: keep-alive for small JSON calls, a connection of its own for
 * every streamed completion (llama-server resets a kept-alive connection after a stream, and a
 * closed connection is how a generation is cancelled).
 */
export class LlamaServerClient {
  private readonly pool: Pool;
  private readonly auth: string;

  constructor(
    readonly process: EngineProcess,
    connections: number,
  ) {
    this.pool = new Pool(process.baseUrl, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: 5_000 },
    });
    this.auth = `Bearer ${process.apiKey}`;
  }

  /** A JSON call; one retry when a kept-alive connection turns out to be closed. */
  async json<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    // The call ends when the caller gives up or the process goes, whichever comes first.
    const linked = signal ? linkSignals(signal, this.process.signal) : undefined;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const response = await this.pool.request({
            method,
            path,
            headers: { authorization: this.auth, "content-type": "application/json" },
            body: body === undefined ? undefined : JSON.stringify(body),
            signal: linked?.signal ?? this.process.signal,
          });
          const text = await response.body.text();
          if (response.statusCode !== 200) throw new LlamaServerHttpError(path, response.statusCode, text);
          return JSON.parse(text) as T;
        } catch (err) {
          if (attempt === 0 && isConnectionReset(err) && !this.process.signal.aborted) continue;
          throw err;
        }
      }
    } finally {
      linked?.dispose();
    }
  }

  /** POSTs a streamed request and yields every SSE `data:` payload as parsed JSON. */
  async *stream(path: string, body: unknown, signal: AbortSignal): AsyncGenerator<Record<string, unknown>> {
    const response = await this.pool.request({
      method: "POST",
      path,
      headers: { authorization: this.auth, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal,
      // `connection: close`: this stream gets a connection of its own and closes it at the end.
      reset: true,
    });
    if (response.statusCode !== 200) {
      throw new LlamaServerHttpError(path, response.statusCode, await response.body.text());
    }
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      buffered += decoder.decode(chunk, { stream: true });
      let end = buffered.indexOf("\n");
      while (end >= 0) {
        const line = buffered.slice(0, end).trimEnd();
        buffered = buffered.slice(end + 1);
        end = buffered.indexOf("\n");
        if (line.startsWith("data: ")) {
          const payload = line.slice(6);
          if (payload === "[DONE]") return;
          yield JSON.parse(payload) as Record<string, unknown>;
        } else if (line.startsWith("error: ")) {
          // llama-server reports a failure inside an open stream as an `error:` line.
          throw new LlamaServerHttpError(path, 500, line.slice(7));
        }
      }
    }
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

/** Polls /health until llama-server has loaded the model (503 while loading). */
export async function waitForHealth(process: EngineProcess, signal: AbortSignal): Promise<void> {
  for (;;) {
    signal.throwIfAborted();
    try {
      const response = await fetch(`${process.baseUrl}/health`, {
        signal,
        headers: { authorization: `Bearer ${process.apiKey}` },
      });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch (err) {
      if (signal.aborted) throw err;
      // Not listening yet.
    }
    await sleep(HEALTH_POLL_MS, undefined, { signal });
  }
}

export class LlamaServerHttpError extends Error {
  override name = "LlamaServerHttpError";

  constructor(
    readonly path: string,
    readonly status: number,
    readonly body: string,
  ) {
    super(`llama-server ${path} answered ${status}: ${body.slice(0, 500)}`);
  }
}

function isConnectionReset(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return (
    err instanceof undiciErrors.SocketError ||
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "UND_ERR_SOCKET" ||
    code === "UND_ERR_CLOSED"
  );
}
