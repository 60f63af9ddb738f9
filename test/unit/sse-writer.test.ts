import { once } from "node:events";
import { createServer, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { SHUTDOWN_STREAM_ERROR } from "../../src/http/errors.js";
import { type SseOptions, SseWriter } from "../../src/http/sse.js";

/** A real HTTP server whose handler hands each response to the test. */
class TestServer {
  private readonly server: Server;
  private readonly responses: ServerResponse[] = [];
  private readonly waiting: ((res: ServerResponse) => void)[] = [];

  constructor() {
    this.server = createServer((_req, res) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(res);
      else this.responses.push(res);
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return (this.server.address() as AddressInfo).port;
  }

  nextResponse(): Promise<ServerResponse> {
    const res = this.responses.shift();
    if (res) return Promise.resolve(res);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * A raw HTTP/1.1 client over a TCP socket: it sees the exact bytes of the status line, the
 * headers and the (chunked) body, and can stop reading to exercise backpressure.
 */
class RawClient {
  status = 0;
  headers: Record<string, string> = {};
  /** Every header line's name, lower-cased, in order: a name sent twice appears twice. */
  headerNames: string[] = [];
  body = "";
  /** The terminating zero-length chunk arrived: the server ended the response. */
  ended = false;
  closed = false;
  private raw = Buffer.alloc(0);
  private headersDone = false;
  private readonly listeners = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.on("data", (data: Buffer) => {
      this.raw = Buffer.concat([this.raw, data]);
      this.parse();
      this.notify();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.notify();
    });
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    return new RawClient(socket);
  }

  /** Resolves once the condition holds; rejects if the connection closes first without it. */
  waitFor(condition: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (condition()) {
          this.listeners.delete(check);
          resolve();
        } else if (this.closed) {
          this.listeners.delete(check);
          reject(new Error(`connection closed before ${what}; body so far: ${JSON.stringify(this.body)}`));
        }
      };
      this.listeners.add(check);
      check();
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private parse(): void {
    if (!this.headersDone) {
      const end = this.raw.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine = "", ...lines] = this.raw.subarray(0, end).toString("latin1").split("\r\n");
      this.status = Number(statusLine.split(" ")[1]);
      for (const line of lines) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim().toLowerCase();
        this.headerNames.push(name);
        this.headers[name] = line.slice(colon + 1).trim();
      }
      this.headersDone = true;
      this.raw = this.raw.subarray(end + 4);
    }
    // Chunked transfer coding: <hex size>\r\n<data>\r\n ... 0\r\n\r\n
    for (;;) {
      const lineEnd = this.raw.indexOf("\r\n");
      if (lineEnd < 0) return;
      const size = Number.parseInt(this.raw.subarray(0, lineEnd).toString("latin1"), 16);
      if (size === 0) {
        this.ended = true;
        this.raw = Buffer.alloc(0);
        return;
      }
      if (this.raw.length < lineEnd + 2 + size + 2) return;
      this.body += this.raw.subarray(lineEnd + 2, lineEnd + 2 + size).toString("utf8");
      this.raw = this.raw.subarray(lineEnd + 2 + size + 2);
    }
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("SseWriter", () => {
  let server: TestServer | undefined;
  const clients: RawClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await server?.close();
    server = undefined;
  });

  /** Starts a server, connects a raw client and wraps the server side in an SseWriter. */
  async function start(
    options: SseOptions = {},
  ): Promise<{ sse: SseWriter; res: ServerResponse; client: RawClient }> {
    server = new TestServer();
    const port = await server.listen();
    const client = await RawClient.connect(port);
    clients.push(client);
    const res = await server.nextResponse();
    return { sse: new SseWriter(res, { keepAliveMs: 0, drainTimeoutMs: 30_000, ...options }), res, client };
  }

  it("sends the event-stream headers with the extra headers", async () => {
    const { sse, client } = await start({
      headers: { "x-request-id": "req_123", "openai-processing-ms": "7" },
    });
    expect(sse.isOpen).toBe(false);
    sse.open();
    sse.open();
    expect(sse.isOpen).toBe(true);
    await client.waitFor(() => client.status !== 0, "the headers");
    expect(client.status).toBe(200);
    expect(client.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(client.headers["cache-control"]).toBe("no-cache");
    expect(client.headers["x-request-id"]).toBe("req_123");
    expect(client.headers["openai-processing-ms"]).toBe("7");
    await sse.done();
  });

  it("extra headers cannot replace the stream's own, nor send them a second time", async () => {
    const { sse, client } = await start({
      headers: { "content-type": "application/json", "Cache-Control": "max-age=60", "x-request-id": "req_1" },
    });
    sse.open();
    await client.waitFor(() => client.status !== 0, "the headers");
    expect(client.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(client.headers["cache-control"]).toBe("no-cache");
    expect(client.headers["x-request-id"]).toBe("req_1");
    expect(client.headerNames.filter((name) => name === "content-type")).toHaveLength(1);
    expect(client.headerNames.filter((name) => name === "cache-control")).toHaveLength(1);
    await sse.done();
  });

  it("frames events as `data: <json>` blank-line separated and ends with [DONE]", async () => {
    const { sse, client } = await start();
    sse.open();
    await sse.send({ id: "chatcmpl-1", choices: [{ delta: { content: "Hi\nthere" } }] });
    await sse.sendRaw('{"raw":true}');
    await sse.done();
    expect(sse.isOpen).toBe(false);
    await client.waitFor(() => client.ended, "the end of the response");
    expect(client.body).toBe(
      'data: {"id":"chatcmpl-1","choices":[{"delta":{"content":"Hi\\nthere"}}]}\n\n' +
        'data: {"raw":true}\n\n' +
        "data: [DONE]\n\n",
    );
  });

  it("sends what one tick writes — the headers and the frames — in one write to the socket", async () => {
    const { sse, res, client } = await start();
    const socket = res.socket as unknown as Record<"_write" | "_writev", (...args: unknown[]) => unknown>;
    let writes = 0;
    for (const name of ["_write", "_writev"] as const) {
      const original = socket[name].bind(socket);
      socket[name] = (...args: unknown[]) => {
        writes++;
        return original(...args);
      };
    }
    sse.open();
    void sse.sendRaw('{"a":1}');
    void sse.sendRaw('{"b":2}');
    void sse.sendRaw('{"c":3}');
    await client.waitFor(() => client.body.includes('"c"'), "the frames");
    expect(writes).toBe(1);
    expect(client.status).toBe(200);
    // A frame of a later tick goes out in that tick: nothing waits for more.
    await sse.sendRaw('{"d":4}');
    await client.waitFor(() => client.body.includes('"d"'), "the later frame");
    expect(writes).toBe(2);
    await sse.done();
  });

  it("frames typed events with event: and id: lines, and refuses names that would break framing", async () => {
    const { sse, client } = await start();
    sse.open();
    await sse.sendEvent("response.created", '{"type":"response.created"}');
    await sse.sendEvent("thread.message.delta", '{"delta":1}', "evt_7");
    await expect(sse.sendEvent("bad\nevent", "{}")).rejects.toThrow(/line breaks/);
    await expect(sse.sendEvent("ok", "{}", "id\r\nx")).rejects.toThrow(/line breaks/);
    sse.end();
    await client.waitFor(() => client.ended, "the end of the response");
    expect(client.body).toBe(
      'event: response.created\ndata: {"type":"response.created"}\n\n' +
        'id: evt_7\nevent: thread.message.delta\ndata: {"delta":1}\n\n',
    );
  });

  it("done() twice writes one [DONE]; sends after the end are dropped", async () => {
    const { sse, client } = await start();
    sse.open();
    await sse.done();
    await sse.done();
    await sse.send({ late: true });
    await client.waitFor(() => client.ended, "the end of the response");
    expect(client.body).toBe("data: [DONE]\n\n");
  });

  it("fail() writes the error frame and ends without [DONE]", async () => {
    const { sse, client } = await start();
    sse.open();
    await sse.send({ n: 1 });
    await sse.fail({ error: { message: "boom", type: "server_error", param: null, code: "internal_error" } });
    await client.waitFor(() => client.ended, "the end of the response");
    expect(client.body).toBe(
      'data: {"n":1}\n\n' +
        'data: {"error":{"message":"boom","type":"server_error","param":null,"code":"internal_error"}}\n\n',
    );
    expect(client.body).not.toContain("[DONE]");
  });

  it("sends a keep-alive comment after silence, again and again", async () => {
    const { sse, client } = await start({ keepAliveMs: 20 });
    sse.open();
    await sse.send({ n: 1 });
    const count = () => client.body.split(": keep-alive\n\n").length - 1;
    await client.waitFor(() => count() >= 2, "two keep-alive comments");
    // Comments sit on frame boundaries, so an SSE parser sees whole events around them.
    expect(client.body.startsWith('data: {"n":1}\n\n: keep-alive\n\n: keep-alive\n\n')).toBe(true);
    await sse.done();
    await client.waitFor(() => client.ended, "the end of the response");
    expect(client.body.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  it("ends every open stream with the shutdown error when its cancel signal fires, without a listener per stream", async () => {
    server = new TestServer();
    const port = await server.listen();
    const cancel = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    const streams: { sse: SseWriter; client: RawClient }[] = [];
    // More than the ten listeners after which Node warns of a leak on the cancel signal.
    for (let i = 0; i < 12; i++) {
      const client = await RawClient.connect(port);
      clients.push(client);
      const res = await server.nextResponse();
      streams.push({
        client,
        sse: new SseWriter(res, { keepAliveMs: 0, drainTimeoutMs: 30_000, cancel: cancel.signal }),
      });
    }
    const [finished, unopened, ...open] = streams as [
      (typeof streams)[0],
      (typeof streams)[0],
      ...typeof streams,
    ];
    finished.sse.open();
    await finished.sse.done();
    for (const { sse } of open) {
      sse.open();
      await sse.send({ n: 1 });
    }
    cancel.abort();
    const cancelled = `data: ${JSON.stringify(SHUTDOWN_STREAM_ERROR)}\n\n`;
    for (const { sse, client } of open) {
      await client.waitFor(() => client.ended, "the end of the stream");
      expect(client.body).toBe(`data: {"n":1}\n\n${cancelled}`);
      expect(sse.signal.aborted).toBe(true);
    }
    // A writer made before the signal fired and opened after it ends at once, the same way.
    unopened.sse.open();
    await unopened.client.waitFor(() => unopened.client.ended, "the end of the stream");
    expect(unopened.client.body).toBe(cancelled);
    await finished.client.waitFor(() => finished.client.ended, "the end of the stream");
    expect(finished.client.body).toBe("data: [DONE]\n\n");
    await settle();
    process.off("warning", onWarning);
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
  });

  it("aborts its signal when the client disconnects", async () => {
    const { sse, client } = await start();
    sse.open();
    await sse.send({ n: 1 });
    await client.waitFor(() => client.body.length > 0, "the first event");
    const aborted = once(sse.signal, "abort");
    client.socket.destroy();
    await aborted;
    expect(sse.signal.aborted).toBe(true);
    expect((sse.signal.reason as Error).message).toMatch(/disconnect/);
    expect(sse.isOpen).toBe(false);
    // Writing to a gone client is a no-op, not an error.
    await sse.send({ n: 2 });
    await sse.done();
  });

  it("does not abort its signal when the response ends normally and the client then leaves", async () => {
    const { sse, res, client } = await start();
    sse.open();
    await sse.done();
    await client.waitFor(() => client.ended, "the end of the response");
    const closed = res.writableFinished ? Promise.resolve() : once(res, "finish");
    await closed;
    client.socket.destroy();
    await new Promise<void>((resolve) => {
      if (res.closed) resolve();
      else res.once("close", () => resolve());
    });
    await settle();
    expect(sse.signal.aborted).toBe(false);
  });

  it("makes send wait while the client does not read, then resumes once it does", async () => {
    const { sse, client } = await start({ drainTimeoutMs: 60_000 });
    sse.open();
    await client.waitFor(() => client.status !== 0, "the headers");
    client.socket.pause();
    const frame = { pad: "x".repeat(256 * 1024) };
    let pending: Promise<void> | undefined;
    for (let i = 0; i < 400 && !pending; i++) {
      const send = sse.send(frame);
      let settled = false;
      void send.then(() => {
        settled = true;
      });
      for (let tick = 0; tick < 5 && !settled; tick++) await settle();
      if (!settled) pending = send;
    }
    expect(pending).toBeDefined();
    client.socket.resume();
    await pending;
    expect(sse.signal.aborted).toBe(false);
    await sse.done();
    await client.waitFor(() => client.ended, "the end of the response");
    expect(client.body.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  it("cuts off a client that stops reading once drainTimeoutMs passes", async () => {
    const { sse, res, client } = await start({ drainTimeoutMs: 30 });
    sse.open();
    await client.waitFor(() => client.status !== 0, "the headers");
    client.socket.pause();
    const frame = { pad: "y".repeat(256 * 1024) };
    let sends = 0;
    let abortedWhenLastSendResolved = false;
    while (!sse.signal.aborted && sends < 400) {
      await sse.send(frame);
      sends++;
      abortedWhenLastSendResolved = sse.signal.aborted;
    }
    // The send that met a full buffer waited until the writer gave up on the client.
    expect(abortedWhenLastSendResolved).toBe(true);
    expect((sse.signal.reason as Error).message).toMatch(/stopped reading/);
    expect(sse.isOpen).toBe(false);
    expect(res.destroyed).toBe(true);
    // A paused socket notices nothing; once it reads again it finds the connection gone.
    client.socket.resume();
    await client.waitFor(() => client.closed, "the server to close the connection");
    expect(client.ended).toBe(false);
    // Later writes and the usual ending are harmless no-ops.
    await sse.send(frame);
    await sse.done();
  });
});
