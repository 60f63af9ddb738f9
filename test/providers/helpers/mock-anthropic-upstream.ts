import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { RecordedRequest } from "./mock-openai-upstream.js";
import {
  checkUpstreamRequest,
  prepareSdkRequestValidators,
  type SchemaCheckedUpstream,
} from "./upstream-request-schemas.js";

/**
 * An Anthropic-shaped upstream on loopback, after the Messages API reference: POST /v1/messages
 * streamed as message_start, content blocks (text, or tool_use with input_json_delta pieces),
 * message_delta with the stop reason and usage, message_stop. `faults` are error statuses. Every
 * body is checked against the SDK's MessageCreateParamsStreaming first: one that does not match
 * is answered 400, as Anthropic would, and recorded in `violations`.
 */
export interface MockAnthropic extends SchemaCheckedUpstream {
  url: string;
  requests: RecordedRequest[];
  faults: { status: number; type: string; message: string }[];
  close(): Promise<void>;
}

export async function startMockAnthropicUpstream(): Promise<MockAnthropic> {
  prepareSdkRequestValidators("anthropic-messages");
  const mock: MockAnthropic = {
    url: "",
    requests: [],
    faults: [],
    violations: [],
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    const path = req.url ?? "";
    mock.requests.push({ path, headers: req.headers, body });
    const mismatch =
      checkUpstreamRequest(mock, { method: req.method, path, body }, "anthropic-messages") ??
      conversationProblem(mock, body);
    const fault = mismatch
      ? { status: 400, type: "invalid_request_error", message: mismatch }
      : mock.faults.shift();
    if (fault) {
      res.writeHead(fault.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ type: "error", error: { type: fault.type, message: fault.message } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    const send = (type: string, data: Record<string, unknown>) =>
      res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    send("message_start", {
      message: {
        id: "msg_1",
        type: "message",
        role: "assistant",
        content: [],
        usage: {
          input_tokens: 20,
          cache_read_input_tokens: 5,
          cache_creation_input_tokens: 2,
          output_tokens: 1,
        },
      },
    });
    send("ping", {});
    const tools = body.tools as { name: string }[] | undefined;
    if (tools?.length) {
      send("content_block_start", { index: 0, content_block: { type: "text", text: "" } });
      send("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Checking." } });
      send("content_block_stop", { index: 0 });
      send("content_block_start", {
        index: 1,
        content_block: { type: "tool_use", id: "toolu_1", name: tools[0]?.name, input: {} },
      });
      for (const partial_json of ['{"city":', ' "Paris"}'])
        send("content_block_delta", { index: 1, delta: { type: "input_json_delta", partial_json } });
      send("content_block_stop", { index: 1 });
      send("message_delta", { delta: { stop_reason: "tool_use" }, usage: { output_tokens: 9 } });
    } else {
      send("content_block_start", { index: 0, content_block: { type: "thinking", thinking: "" } });
      send("content_block_delta", { index: 0, delta: { type: "thinking_delta", thinking: "Hmm." } });
      send("content_block_stop", { index: 0 });
      send("content_block_start", { index: 1, content_block: { type: "text", text: "" } });
      for (const text of ["Hello", " from", " Claude"])
        send("content_block_delta", { index: 1, delta: { type: "text_delta", text } });
      send("content_block_stop", { index: 1 });
      send("message_delta", {
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: 6 },
      });
    }
    send("message_stop", {});
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  mock.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return mock;
}

/**
 * Rules of the Messages API that its request types cannot say, as Anthropic words its 400s. A
 * broken rule is recorded in `violations` too: the test fails where it happened.
 */
function conversationProblem(mock: MockAnthropic, body: Record<string, unknown>): string | undefined {
  const messages = (body.messages ?? []) as { role: string; content: unknown }[];
  const problem = messages
    .map((message, i) => {
      const finalAssistant = i === messages.length - 1 && message.role === "assistant";
      return Array.isArray(message.content) && message.content.length === 0 && !finalAssistant
        ? `messages.${i}: all messages must have non-empty content except for the optional final assistant message`
        : undefined;
    })
    .find((found) => found !== undefined);
  if (problem) mock.violations.push(problem);
  return problem;
}
