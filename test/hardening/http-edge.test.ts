import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/**
 * The HTTP edge under bad input: every refusal is the OpenAI error envelope as JSON, with a
 * request id, and nothing internal (stack, path) in it. Raw HTTP where the SDK cannot say it.
 */

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

function send(
  url: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}${path}`,
      { method: options.method ?? "POST", headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

const postJson = (url: string, body: string, headers: Record<string, string> = {}) =>
  send(url, "/v1/chat/completions", { body, headers: { "content-type": "application/json", ...headers } });

/** Writes `head` (and optionally more) on a raw socket and resolves with the first response. */
function rawExchange(
  url: string,
  write: (socket: net.Socket) => void,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = "";
    const tryParse = () => {
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine = "", ...lines] = received.slice(0, end).split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers["content-length"] ?? Number.NaN);
      const body = received.slice(end + 4);
      if (Number.isNaN(length) || Buffer.byteLength(body) < length) return;
      socket.destroy();
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: body.slice(0, length) });
    };
    socket.on("data", (chunk) => {
      received += chunk.toString();
      tryParse();
    });
    socket.on("error", (err) => {
      // The server may reset a connection it refused after answering; what it answered counts.
      if (received) tryParse();
      else reject(err);
    });
    socket.on("close", () => reject(new Error(`connection closed; received: ${received.slice(0, 200)}`)));
    socket.on("connect", () => write(socket));
  });
}

/** The envelope every error must be, with nothing that looks like a stack or a file path. */
function expectEnvelope(
  res: {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    text?: string;
    body?: string;
  },
  status: number,
  code?: string,
): { message: string; type: string; param: string | null; code: string | null } {
  const text = res.text ?? res.body ?? "";
  expect(res.status, text).toBe(status);
  expect(String(res.headers["content-type"])).toMatch(/^application\/json/);
  expect(res.headers["x-request-id"], "x-request-id header").toEqual(expect.any(String));
  const body = JSON.parse(text) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  expect(body.error.message).toEqual(expect.any(String));
  expect(body.error.type).toEqual(expect.any(String));
  if (code !== undefined) expect(body.error.code).toBe(code);
  expect(text).not.toMatch(/\bat .+:\d+:\d+|node_modules|\/src\/|\.ts\b|\.js:\d/);
  return body.error as ReturnType<typeof expectEnvelope>;
}

async function expectHealthy(url: string): Promise<void> {
  const res = await send(url, "/health", { method: "GET" });
  expect(res.status).toBe(200);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function nested(depth: number, open = "[", close = "]", inner = "1"): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

describe("the HTTP edge refuses bad input with the JSON error envelope", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers malformed JSON with 400 invalid_json", async () => {
    for (const body of ['{"model": "tiny", "messages": [', "{model: tiny}", '{"a":1}}', "\u0000"]) {
      expectEnvelope(await postJson(t.url, body), 400, "invalid_json");
    }
  });

  it("answers a JSON body that is not an object (array, string, number, null) with 400", async () => {
    for (const body of ["[]", '[{"model":"tiny"}]', '"hello"', "42", "true", "null"]) {
      expectEnvelope(await postJson(t.url, body), 400);
    }
  });

  it("answers an empty body sent as JSON with 400", async () => {
    expectEnvelope(await postJson(t.url, ""), 400, "invalid_json");
    expectEnvelope(
      await send(t.url, "/v1/chat/completions", { headers: { "content-type": "application/json" } }),
      400,
    );
  });

  it("answers a body in the wrong content type with 400", async () => {
    const json = JSON.stringify({ model: TINY_MODEL, messages: [{ role: "user", content: "hi" }] });
    for (const type of [
      "text/plain",
      "application/xml",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      expectEnvelope(
        await send(t.url, "/v1/chat/completions", { body: json, headers: { "content-type": type } }),
        400,
      );
    }
    // No content type at all.
    expectEnvelope(await send(t.url, "/v1/chat/completions", { body: json }), 400);
  });

  it("answers prototype-poisoning JSON with 400 and no effect", async () => {
    const body = `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"__proto__":{"polluted":1}}`;
    expectEnvelope(await postJson(t.url, body), 400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("refuses 100k nested arrays or objects in any field fast, and keeps serving", async () => {
    const depth = 100_000;
    const deep = {
      asMessages: `{"model":"tiny","messages":${nested(depth)}}`,
      inMetadata: `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"metadata":{"k":${nested(depth)}}}`,
      inContent: `{"model":"tiny","messages":[{"role":"user","content":${nested(depth)}}]}`,
      inLooseField: `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"tools":${nested(depth, '{"a":', "}")}}`,
      unknownField: `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"extra":${nested(depth)}}`,
      withConstructorKey: `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"tools":${nested(depth, '{"constructor":', "}")}}`,
      asWholeBody: nested(depth),
    };
    for (const [name, body] of Object.entries(deep)) {
      const res = await postJson(t.url, body);
      expect([400, 413], `${name}: ${res.text.slice(0, 200)}`).toContain(res.status);
      expectEnvelope(res, res.status);
    }
    await expectHealthy(t.url);
    const ok = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "still there?" }],
      max_tokens: 2,
    });
    expect(ok.choices).toHaveLength(1);
  });

  it("answers oversized headers with 431 and the envelope", async () => {
    // The default limit is 16 KiB.
    const res = await rawExchange(t.url, (socket) => {
      socket.write(`GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`);
    });
    expectEnvelope(res, 431);
    await expectHealthy(t.url);
  });

  it("answers unknown routes with 404 JSON, never HTML", async () => {
    for (const [method, path] of [
      ["GET", "/"],
      ["GET", "/v1/nope"],
      ["POST", "/v1/chat/nope"],
      ["GET", "/v1/chat/completions/abc/def/ghi"],
      ["PUT", "/index.html"],
    ] as const) {
      const res = await send(t.url, path, { method });
      expectEnvelope(res, 404);
      expect(res.text).not.toMatch(/<html|<!doctype/i);
    }
  });

  it("answers paths the router rejects (broken percent-encoding, over-long ids) with the envelope", async () => {
    const long = await send(t.url, `/admin/projects/${"a".repeat(600)}`, { method: "GET" });
    expectEnvelope(long, 404, "not_found");
    expect(long.text).not.toContain("a".repeat(100));
    expectEnvelope(await send(t.url, "/v1/models/%E0%A4%A", { method: "GET" }), 400, "invalid_url");
  });

  it("answers a wrong method on a known route with 405 JSON and an Allow header", async () => {
    const cases: [string, string, RegExp][] = [
      ["DELETE", "/v1/chat/completions", /\bPOST\b/],
      ["GET", "/v1/chat/completions", /\bPOST\b/],
      ["POST", "/v1/models", /\bGET\b/],
      ["PUT", "/health", /\bGET\b/],
    ];
    for (const [method, path, allow] of cases) {
      const res = await send(t.url, path, { method });
      expectEnvelope(res, 405, "method_not_allowed");
      expect(res.headers.allow).toMatch(allow);
    }
  });

  it("answers an unknown model with 404 model_not_found", async () => {
    const res = await postJson(
      t.url,
      JSON.stringify({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }),
    );
    const error = expectEnvelope(res, 404, "model_not_found");
    expect(error.param).toBe("model");
    await expect(
      t.client.chat.completions.create({
        model: "no-such-model",
        messages: [{ role: "user", content: "hi" }],
      }),
    ).rejects.toMatchObject({ status: 404, code: "model_not_found" });
  });

  it("puts an x-request-id on every response, errors and 404s included", async () => {
    const responses = [
      await send(t.url, "/health", { method: "GET" }),
      await send(t.url, "/v1/models", { method: "GET" }),
      await send(t.url, "/nope", { method: "GET" }),
      await send(t.url, "/v1/models", { method: "POST" }),
      await postJson(t.url, "{"),
      await postJson(
        t.url,
        JSON.stringify({ model: TINY_MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 1 }),
      ),
    ];
    const ids = responses.map((r) => r.headers["x-request-id"]);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // A sane client id is echoed; an unsafe one is replaced.
    const echoed = await send(t.url, "/nope", { method: "GET", headers: { "x-request-id": "client-id-1" } });
    expect(echoed.headers["x-request-id"]).toBe("client-id-1");
    const replaced = await send(t.url, "/health", {
      method: "GET",
      headers: { "x-request-id": "a b<script>" },
    });
    expect(replaced.headers["x-request-id"]).not.toBe("a b<script>");
  });
});

describe("operations endpoints", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("/health and /ready answer 200 once the model is loaded", async () => {
    const health = await send(t.url, "/health", { method: "GET" });
    expect(health.status).toBe(200);
    const ready = await send(t.url, "/ready", { method: "GET" });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toMatchObject({
      status: "ready",
      models: [{ id: TINY_MODEL, ready: true }],
    });
  });

  it("/metrics is Prometheus text with request, token, queue and slot series", async () => {
    await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "count me" }],
      max_tokens: 3,
    });
    const res = await send(t.url, "/metrics", { method: "GET" });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    for (const name of [
      "switchboard_http_requests_total",
      "switchboard_tokens_total",
      "switchboard_queue_depth",
      "switchboard_busy_slots",
    ]) {
      expect(res.text).toMatch(new RegExp(`^# TYPE ${name} `, "m"));
    }
    expect(res.text).toMatch(
      /^switchboard_http_requests_total\{method="POST",route="\/v1\/chat\/completions",status="200"\} [1-9]/m,
    );
    expect(res.text).toMatch(/^switchboard_tokens_total\{model="tiny",kind="completion"\} [1-9]/m);
    expect(res.text).toMatch(/^switchboard_queue_depth\{model="tiny"\} 0$/m);
    expect(res.text).toMatch(/^switchboard_busy_slots\{model="tiny"\} 0$/m);
  });
});

describe("request logs", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  interface LogLine {
    msg?: string;
    requestId?: string;
    status?: number;
    model?: string;
    promptTokens?: number;
    completionTokens?: number;
  }
  const parsed = (): LogLine[] =>
    t.logs.flatMap((l) =>
      l
        .split("\n")
        .filter(Boolean)
        .map((x) => JSON.parse(x)),
    );
  const requestLines = (id: string) => parsed().filter((l) => l.msg === "request" && l.requestId === id);

  it("never contain prompt or completion text, and hold one line per request with its numbers", async () => {
    const marker = `MARKER-${Math.random().toString(36).slice(2)}-PROMPT`;
    const messages = [{ role: "user" as const, content: `please repeat ${marker}` }];

    const plain = await t.client.chat.completions
      .create({ model: TINY_MODEL, messages, max_tokens: 24 })
      .withResponse();
    const completion = plain.data.choices[0]?.message.content ?? "";

    const streamed = await t.client.chat.completions
      .create({
        model: TINY_MODEL,
        messages,
        max_tokens: 24,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let streamedText = "";
    for await (const chunk of streamed.data) streamedText += chunk.choices[0]?.delta.content ?? "";

    // Errors echo nothing of the body either.
    const bad = await postJson(t.url, JSON.stringify({ model: TINY_MODEL, messages, temperature: 7 }));
    expect(bad.status).toBe(400);
    const missing = await postJson(t.url, JSON.stringify({ model: `nope-${marker}`, messages }));
    expect(missing.status).toBe(404);

    const ids = [
      plain.response.headers.get("x-request-id"),
      streamed.response.headers.get("x-request-id"),
      bad.headers["x-request-id"],
      missing.headers["x-request-id"],
    ] as string[];
    // The last line is written as the response finishes; give the streaming one a moment.
    const deadline = Date.now() + 2_000;
    while (ids.some((id) => requestLines(id).length === 0) && Date.now() < deadline) await sleep(10);

    const all = t.logs.join("");
    expect(all).not.toContain(marker);
    expect(all).not.toContain("please repeat");
    for (const text of [completion, streamedText]) {
      // Random-weight output; only a long enough piece is meaningful to look for.
      if (text.trim().length >= 12) expect(all).not.toContain(text);
    }

    for (const [index, id] of ids.entries()) {
      const lines = requestLines(id);
      expect(lines, `request log lines for request #${index}`).toHaveLength(1);
      expect(lines[0]?.status).toBe([200, 200, 400, 404][index]);
    }
    for (const id of ids.slice(0, 2)) {
      expect(requestLines(id)[0]).toMatchObject({
        model: TINY_MODEL,
        promptTokens: expect.any(Number),
        completionTokens: expect.any(Number),
      });
    }
  });
});

describe("a server with small limits", () => {
  let t: TestServer;
  const LIMIT = 64 * 1024;
  beforeAll(async () => {
    t = await startTestServer({
      config: { body_limit_bytes: LIMIT, header_limit_bytes: 2048, headers_timeout_ms: 1000 },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers a body over the limit with 413", async () => {
    const body = JSON.stringify({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "x".repeat(LIMIT * 4) }],
    });
    expectEnvelope(await postJson(t.url, body), 413, "request_too_large");
    await expectHealthy(t.url);
  });

  it("refuses a declared oversized body before reading it", async () => {
    // Claims 100 MiB but sends none of it: only a server that trusts the header can answer.
    const res = await rawExchange(t.url, (socket) => {
      socket.write(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{",
      );
    });
    expectEnvelope(res, 413, "request_too_large");
    await expectHealthy(t.url);
  });

  it("refuses a chunked body as soon as it passes the limit, without waiting for its end", async () => {
    const res = await rawExchange(t.url, (socket) => {
      socket.write(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
      );
      const chunk = "a".repeat(16 * 1024);
      // Twice the limit, and never the terminating chunk.
      for (let i = 0; i < 8; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    });
    expectEnvelope(res, 413, "request_too_large");
    await expectHealthy(t.url);
  });

  it("answers headers over header_limit_bytes with 431", async () => {
    const res = await rawExchange(t.url, (socket) => {
      socket.write(`GET /v1/models HTTP/1.1\r\nHost: localhost\r\nX-Big: ${"a".repeat(4096)}\r\n\r\n`);
    });
    expectEnvelope(res, 431);
    await expectHealthy(t.url);
  });

  it("times out clients that trickle their headers (slowloris) while serving everyone else", async () => {
    const { hostname, port } = new URL(t.url);
    const trickling = Array.from({ length: 20 }, () => net.connect(Number(port), hostname));
    const timers: NodeJS.Timeout[] = [];
    const answers = trickling.map(
      (socket) =>
        new Promise<string>((resolve) => {
          let received = "";
          socket.on("data", (chunk: Buffer) => {
            received += chunk.toString();
          });
          socket.on("error", () => {});
          socket.on("close", () => resolve(received));
          socket.on("connect", () => {
            socket.write("GET /health HTTP/1.1\r\nHost: localhost\r\n");
            timers.push(setInterval(() => socket.writable && socket.write("X-Slow: 1\r\n"), 100));
          });
        }),
    );
    try {
      await expectHealthy(t.url);
      const ok = await t.client.chat.completions.create({
        model: TINY_MODEL,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 2,
      });
      expect(ok.choices).toHaveLength(1);
      // Cut off well within a few seconds of the 1 s headers timeout, with the envelope.
      const bounded = await Promise.race([Promise.all(answers), sleep(5_000).then(() => "still open")]);
      expect(bounded, "slow connections were not cut off").not.toBe("still open");
      for (const received of bounded as string[]) {
        expect(received).toMatch(/^HTTP\/1\.1 408 /);
        const [head = "", body = ""] = received.split("\r\n\r\n");
        expect(head).toMatch(/^content-type: application\/json/im);
        expect(JSON.parse(body)).toMatchObject({ error: { code: "request_timeout" } });
      }
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const socket of trickling) socket.destroy();
    }
  });
});
