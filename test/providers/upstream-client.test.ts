import { getEventListeners, once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { UpstreamClient } from "../../src/backends/providers/upstream-client.js";
import { CancelSource, cancellationOf } from "../../src/core/cancellation.js";
import { ServiceError } from "../../src/core/errors.js";

/** An upstream whose handler each test writes; it counts connections and requests. */
async function upstream(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const state = { connections: 0, requests: 0, closed: 0 };
  const server: Server = createServer((req, res) => {
    state.requests++;
    req.resume();
    req.on("end", () => handler(req, res));
  });
  server.on("connection", (socket) => {
    state.connections++;
    socket.on("close", () => state.closed++);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, state, url };
}

function clientOf(url: string): UpstreamClient {
  return new UpstreamClient({
    baseUrl: `${url}/v1`,
    headers: {},
    secrets: ["sk-secret"],
    maxConnections: 4,
    timeoutMs: 5_000,
    idleTimeoutMs: 5_000,
    errorMessage: (body) => (body as { error?: { message?: string } }).error?.message,
  });
}

/** Waits until `condition` holds, checking after each turn of the event loop. */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe("the upstream client", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of cleanup.splice(0)) await close();
  });

  async function setUp(handler: (req: IncomingMessage, res: ServerResponse) => void) {
    const up = await upstream(handler);
    const client = clientOf(up.url);
    cleanup.push(async () => {
      await client.close();
      up.server.closeAllConnections();
      up.server.close();
    });
    return { ...up, client };
  }

  it("reads a whole answer and keeps its connection open", async () => {
    const { client, state } = await setUp((_req, res) => res.end("data: one\n\ndata: [DONE]\n\n"));
    for (let i = 0; i < 3; i++) {
      const response = await client.post("/chat/completions", { i }, new CancelSource());
      let text = "";
      for (let chunk = await response.read(); chunk; chunk = await response.read()) text += chunk;
      expect(text).toBe("data: one\n\ndata: [DONE]\n\n");
      response.release();
    }
    // Kept alive: none closed (the pool may open a second one for a request sent in the same turn).
    expect(state).toMatchObject({ requests: 3, closed: 0 });
  });

  it("reads the rest of a released answer in the background, and keeps the connection", async () => {
    let ended = 0;
    const { client, state } = await setUp((_req, res) => {
      res.write("data: [DONE]\n\n");
      setImmediate(() => res.end(": trailing comment\n\n", () => ended++));
    });
    const response = await client.post("/chat/completions", {}, new CancelSource());
    expect(String(await response.read())).toBe("data: [DONE]\n\n");
    response.release();
    const next = await client.post("/chat/completions", {}, new CancelSource());
    expect(String(await next.read())).toBe("data: [DONE]\n\n");
    next.release();
    await until(() => ended === 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(state).toMatchObject({ requests: 2, closed: 0 });
  });

  it("holds a large answer back while the reader is behind, then gives every byte in order", async () => {
    // 2 MiB in 16 KiB writes: far over the 64 KiB held for the reader, so the body is paused and
    // resumed many times; a resume that never came would leave the read below waiting forever.
    const pieces = Array.from({ length: 128 }, (_, i) =>
      String.fromCharCode(65 + (i % 26)).repeat(16 * 1024),
    );
    const { client, state } = await setUp((_req, res) => {
      res.setHeader("content-length", pieces.length * 16 * 1024);
      const write = (i: number) => {
        while (i < pieces.length) {
          if (!res.write(pieces[i++])) return void res.once("drain", () => write(i));
        }
        res.end();
      };
      write(0);
    });
    const response = await client.post("/chat/completions", {}, new CancelSource());
    const received: Buffer[] = [];
    for (let chunk = await response.read(); chunk; chunk = await response.read()) {
      received.push(chunk);
      // A slow reader: the upstream's chunks pile up between two reads.
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(Buffer.concat(received).toString("latin1")).toBe(pieces.join(""));
    response.release();
    expect(state).toMatchObject({ requests: 1, closed: 0 });
  });

  it("cuts a released answer off instead of reading more than 64 KiB of it", async () => {
    const { client, state } = await setUp((_req, res) => {
      res.write("data: [DONE]\n\n");
      res.write("x".repeat(70 * 1024));
      // Never ends: only cutting the connection ends this exchange.
    });
    const response = await client.post("/chat/completions", {}, new CancelSource());
    await response.read();
    response.release();
    await until(() => state.closed === 1);
  });

  it.each([
    {
      through: "a hook of its own cancellation (no AbortSignal made)",
      caller: () => {
        const cancel = new CancelSource();
        return { cancel, abort: (reason: Error) => cancel.abort(reason), listeners: () => 0 };
      },
      listening: 0,
    },
    {
      through: "a listener of a worker's AbortSignal",
      caller: () => {
        const controller = new AbortController();
        return {
          cancel: cancellationOf(controller.signal),
          abort: (reason: Error) => controller.abort(reason),
          listeners: () => getEventListeners(controller.signal, "abort").length,
        };
      },
      listening: 1,
    },
  ])(
    "stops when the caller aborts mid-answer, through $through: the reason is thrown and the connection dropped",
    async ({ caller, listening }) => {
      const { client, state } = await setUp((_req, res) => res.write("data: one\n\n"));
      const { cancel, abort, listeners } = caller();
      const response = await client.post("/chat/completions", {}, cancel);
      expect(String(await response.read())).toBe("data: one\n\n");
      expect(listeners()).toBe(listening);
      const reason = new Error("client disconnected");
      const next = response.read();
      abort(reason);
      await expect(next).rejects.toBe(reason);
      response.abandon();
      expect(listeners()).toBe(0);
      await until(() => state.closed === 1);
    },
  );

  it("sends nothing for a caller that cancelled before the request, and throws its reason", async () => {
    const { client, state } = await setUp((_req, res) => res.end("never"));
    const reason = new Error("gone before it began");
    const caller = new CancelSource();
    caller.abort(reason);
    await expect(client.post("/chat/completions", {}, caller)).rejects.toBe(reason);
    expect(state.requests).toBe(0);
  });

  it("reads an error status's body (bounded) into our error, with the wait the upstream asked for", async () => {
    const { client } = await setUp((_req, res) => {
      res.writeHead(429, { "content-type": "application/json", "retry-after-ms": "1500" });
      res.end(JSON.stringify({ error: { message: "slow down, sk-secret" } }));
    });
    const err = await client.post("/chat/completions", {}, new CancelSource()).catch((e) => e);
    expect(err).toMatchObject({ kind: "rate_limited", code: "upstream_rate_limited" });
    expect(err.message).toBe("The upstream provider is rate limiting requests: slow down, [redacted]");
    expect(err.hints).toMatchObject({ "retry-after-ms": "1500", "retry-after": "2" });
  });

  it("reads a JSON answer whole (embeddings)", async () => {
    const { client } = await setUp((_req, res) => {
      res.write('{"data":[{"embedding":[0.5,');
      setImmediate(() => res.end('1]}],"usage":{"prompt_tokens":2}}'));
    });
    const body = await client.postJson("/embeddings", {}, new CancelSource());
    expect(body).toEqual({ data: [{ embedding: [0.5, 1] }], usage: { prompt_tokens: 2 } });
  });

  it("answers a JSON answer that is not JSON with our 502 upstream_protocol_error, which a retry may get past", async () => {
    const { client } = await setUp((_req, res) => res.end('{"data":[{"embedding":[0.5,'));
    const err = await client.postJson("/embeddings", {}, new CancelSource()).catch((e) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect(err).toMatchObject({
      kind: "bad_gateway",
      status: 502,
      code: "upstream_protocol_error",
      retryable: true,
    });
  });
});
