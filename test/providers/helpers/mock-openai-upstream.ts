import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { prepareSpecRequestValidators, type SpecRequestSchemaName } from "../../helpers/openapi.js";
import { checkUpstreamRequest, type SchemaCheckedUpstream } from "./upstream-request-schemas.js";

/**
 * An OpenAI-compatible upstream on loopback, following the public API reference: chat
 * completions and completions as event streams (or JSON), embeddings. Each request takes the
 * next fault from `faults` (none: a normal answer), so tests can count calls and break things.
 * Every body is checked first against the OpenAPI spec's request schema for its path, held
 * strictly: one that does not match is answered 400 and recorded in `violations`.
 */

export type Fault =
  | { status: number; headers?: Record<string, string>; body?: unknown }
  /** Accept the connection and never answer. */
  | { hang: true }
  /** Send this many content chunks, then destroy the socket. */
  | { disconnectAfter: number }
  /** Send an event whose data is not JSON (embeddings: an answer that is not JSON). */
  | { malformed: true }
  /** Send the answer, then hang without [DONE]. */
  | { stallBeforeDone: true }
  /** Send each event this long after the previous one (a slow but live stream). */
  | { eventDelayMs: number }
  /** Send this many events, then an error event with this message (as OpenAI reports trouble mid-stream). */
  | { errorEventAfter: number; message: string };

export interface RecordedRequest {
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
}

export interface MockUpstream extends SchemaCheckedUpstream {
  url: string;
  requests: RecordedRequest[];
  faults: Fault[];
  /** Text the next normal chat answers stream, piece by piece. */
  answer: string[];
  /** Connections accepted so far (keep-alive at work: far fewer than requests). */
  connections: number;
  /** Answers whose exchange was cut before they ended (the gateway let go of it). */
  cutShort: number;
  close(): Promise<void>;
}

/** The spec's schema for the body of each path the mock serves. */
function requestSchema(path: string): SpecRequestSchemaName | undefined {
  if (path.endsWith("/chat/completions")) return "CreateChatCompletionRequest";
  if (path.endsWith("/completions")) return "CreateCompletionRequest";
  if (path.endsWith("/embeddings")) return "CreateEmbeddingRequest";
  return undefined;
}

export async function startMockOpenAiUpstream(): Promise<MockUpstream> {
  const mock = createMockOpenAiUpstream();
  await mock.listen();
  return mock;
}

/** A mock not listening yet (its url is set by listen()): a suite can hold it before its hooks run. */
export function createMockOpenAiUpstream(): MockUpstream & { listen(): Promise<void> } {
  const hanging = new Set<ServerResponse>();
  const mock: MockUpstream & { listen(): Promise<void> } = {
    url: "",
    listen: async () => {
      // The spec's first parse blocks for seconds: done now, before the server is listening.
      prepareSpecRequestValidators();
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      mock.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    requests: [],
    faults: [],
    answer: ["Hello", " from", " upstream"],
    connections: 0,
    cutShort: 0,
    violations: [],
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server: Server = createServer(async (req, res) => {
    res.on("close", () => {
      if (!res.writableFinished) mock.cutShort++;
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
    const path = req.url ?? "";
    mock.requests.push({ path, headers: req.headers, body });
    const schema = requestSchema(path);
    const mismatch = schema && checkUpstreamRequest(mock, { method: req.method, path, body }, schema);
    const fault: Fault | undefined = mismatch
      ? { status: 400, body: { error: { message: mismatch, type: "invalid_request_error" } } }
      : mock.faults.shift();
    if (fault && "status" in fault) {
      res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
      res.end(
        JSON.stringify(
          fault.body ?? { error: { message: `injected ${fault.status}`, type: "server_error" } },
        ),
      );
      return;
    }
    if (fault && "hang" in fault) {
      hanging.add(res);
      return;
    }
    if (req.url?.endsWith("/embeddings")) {
      if (fault && "malformed" in fault) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"object":"list","data":[{"embedding":[0.1,');
        return;
      }
      return embeddings(body, res);
    }
    const events = answerEvents(body, mock.answer);
    if (body.stream !== true) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "this mock streams only" } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    if (fault && "malformed" in fault) {
      res.end("data: {not json\n\n");
      return;
    }
    for (const [i, event] of events.entries()) {
      if (fault && "disconnectAfter" in fault && i === fault.disconnectAfter) {
        res.destroy();
        return;
      }
      if (fault && "errorEventAfter" in fault && i === fault.errorEventAfter) {
        res.end(`data: ${JSON.stringify({ error: { message: fault.message, type: "server_error" } })}\n\n`);
        return;
      }
      if (fault && "eventDelayMs" in fault)
        await new Promise((resolve) => setTimeout(resolve, fault.eventDelayMs));
      // Flushed before going on, so a disconnect comes after these bytes, never instead of them.
      await new Promise((resolve) => res.write(`data: ${JSON.stringify(event)}\n\n`, resolve));
    }
    if (fault && "stallBeforeDone" in fault) {
      hanging.add(res);
      return;
    }
    res.end("data: [DONE]\n\n");
  });
  server.on("connection", () => {
    mock.connections++;
  });
  return mock;
}

function embeddings(body: Record<string, unknown>, res: ServerResponse): void {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      object: "list",
      model: body.model,
      data: inputs.map((_, index) => ({ object: "embedding", index, embedding: [index, 0.5, -0.25] })),
      usage: { prompt_tokens: inputs.length * 3, total_tokens: inputs.length * 3 },
    }),
  );
}

const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
  id: "chatcmpl-up",
  object: "chat.completion.chunk",
  created: 1,
  model: "upstream",
  choices,
  ...extra,
});

/** The events of a normal answer: tool calls when tools are offered, JSON when a schema is asked for. */
function answerEvents(body: Record<string, unknown>, answer: string[]): unknown[] {
  const usage = {
    prompt_tokens: 11,
    completion_tokens: 7,
    total_tokens: 18,
    prompt_tokens_details: { cached_tokens: 3 },
  };
  const withUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
  const events: unknown[] = [];
  if (body.prompt !== undefined) {
    for (const text of answer)
      events.push({ object: "text_completion", choices: [{ index: 0, text, finish_reason: null }] });
    events.push({ object: "text_completion", choices: [{ index: 0, text: "", finish_reason: "length" }] });
  } else if (Array.isArray(body.tools) && body.tools.length > 0) {
    const name = (body.tools[0] as { function: { name: string } }).function.name;
    events.push(chunk([{ index: 0, delta: { role: "assistant", content: null } }]));
    events.push(
      chunk([
        {
          index: 0,
          delta: {
            tool_calls: [{ index: 0, id: "call_up1", type: "function", function: { name, arguments: "" } }],
          },
        },
      ]),
    );
    for (const piece of ['{"city"', ': "Par', 'is"}'])
      events.push(
        chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: piece } }] } }]),
      );
    events.push(chunk([{ index: 0, delta: {}, finish_reason: "tool_calls" }]));
  } else {
    const format = body.response_format as { type?: string } | undefined;
    const pieces = format && format.type !== "text" ? ['{"answer":', " 42}"] : answer;
    events.push(chunk([{ index: 0, delta: { role: "assistant", content: "" } }]));
    for (const content of pieces) events.push(chunk([{ index: 0, delta: { content } }]));
    events.push(chunk([{ index: 0, delta: {}, finish_reason: "stop" }]));
  }
  if (withUsage) events.push(chunk([], { usage }));
  return events;
}
