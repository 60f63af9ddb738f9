import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { RecordedRequest } from "./mock-openai-upstream.js";
import { startRecordingServer } from "./recording-server.js";
import {
  checkUpstreamRequest,
  prepareSdkRequestValidators,
  type SchemaCheckedUpstream,
} from "./upstream-request-schemas.js";

/**
 * An Anthropic-shaped upstream on loopback, after the Messages API reference: POST /v1/messages
 * streamed as message_start, content blocks (thinking with its signature, text, or tool_use with
 * input_json_delta pieces), message_delta with the stop reason and usage, message_stop. Each
 * request takes the next fault from `faults` (none: a normal answer), so tests can count calls and
 * break things. Every body is checked against the SDK's MessageCreateParamsStreaming first: one
 * that does not match is answered 400, as Anthropic would, and recorded in `violations`.
 */
export type AnthropicFault =
  /** An error status with Anthropic's error body (`type` e.g. rate_limit_error, overloaded_error). */
  | { status: number; type?: string; message?: string; headers?: Record<string, string> }
  /** Accept the connection and never answer. */
  | { hang: true }
  /** Send this many events, then destroy the socket. */
  | { disconnectAfter: number }
  /** Send this many events, then end the response cleanly: a stream cut short without message_stop. */
  | { endAfter: number }
  /** Send an event whose data is not JSON. */
  | { malformed: true }
  /** Send this many events, then Anthropic's mid-stream `event: error` (and end the stream). */
  | { errorAfter: number; error: { type: string; message: string } }
  /** Send the answer up to message_stop, then hang. */
  | { stallBeforeStop: true }
  /** Send each event this long after the previous one (a slow but live stream). */
  | { eventDelayMs: number };

export interface MockAnthropic extends SchemaCheckedUpstream {
  url: string;
  requests: RecordedRequest[];
  faults: AnthropicFault[];
  close(): Promise<void>;
}

export async function startMockAnthropicUpstream(): Promise<MockAnthropic> {
  prepareSdkRequestValidators("anthropic-messages");
  const mock: MockAnthropic = { url: "", requests: [], faults: [], violations: [], close: async () => {} };
  const server = await startRecordingServer(mock.requests, async ({ path, body }, req, res, hanging) => {
    const mismatch =
      checkUpstreamRequest(mock, { method: req.method, path, body }, "anthropic-messages") ??
      conversationProblem(mock, body);
    const fault: AnthropicFault | undefined = mismatch
      ? { status: 400, type: "invalid_request_error", message: mismatch }
      : mock.faults.shift();
    if (fault && "status" in fault) {
      res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
      const error = { type: fault.type ?? "api_error", message: fault.message ?? `injected ${fault.status}` };
      res.end(JSON.stringify({ type: "error", error }));
      return;
    }
    if (fault && "hang" in fault) {
      hanging.add(res);
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    if (fault && "malformed" in fault) {
      res.end("event: message_start\ndata: {not json\n\n");
      return;
    }
    const events: string[] = [];
    const send = (type: string, data: Record<string, unknown>) =>
      events.push(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
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
    const tools = body.tools as { name: string; input_schema: { properties?: object } }[] | undefined;
    const choice = body.tool_choice as { type?: string; name?: string } | undefined;
    // A forced call (tool_choice tool or any) comes with no text before it, as Claude answers one.
    const forced = choice?.type === "tool" || choice?.type === "any";
    const called = tools?.find((tool) => tool.name === choice?.name) ?? tools?.[0];
    const thinking = (body.thinking as { type?: string } | undefined)?.type === "enabled";
    let index = 0;
    const sendThinking = (pieces: string[]) => {
      send("content_block_start", {
        index,
        content_block: { type: "thinking", thinking: "", signature: "" },
      });
      for (const piece of pieces)
        send("content_block_delta", { index, delta: { type: "thinking_delta", thinking: piece } });
      const signature = mockThinkingSignature(pieces.join(""));
      send("content_block_delta", { index, delta: { type: "signature_delta", signature } });
      send("content_block_stop", { index: index++ });
    };
    const sendText = (pieces: string[]) => {
      send("content_block_start", { index, content_block: { type: "text", text: "" } });
      for (const text of pieces) send("content_block_delta", { index, delta: { type: "text_delta", text } });
      send("content_block_stop", { index: index++ });
    };
    if (tools?.length && !answersToolResults(body)) {
      if (thinking) {
        sendThinking(["I should look", " up the weather."]);
        send("content_block_start", {
          index,
          content_block: { type: "redacted_thinking", data: MOCK_REDACTED_THINKING },
        });
        send("content_block_stop", { index: index++ });
      }
      if (!forced) sendText(["Checking."]);
      send("content_block_start", {
        index,
        content_block: { type: "tool_use", id: "toolu_1", name: called?.name, input: {} },
      });
      const input =
        called?.input_schema.properties && "city" in called.input_schema.properties
          ? ['{"city":', ' "Paris"}']
          : ['{"answer":', ' 42, "unit": "m"}'];
      for (const partial_json of input)
        send("content_block_delta", { index, delta: { type: "input_json_delta", partial_json } });
      send("content_block_stop", { index: index++ });
      send("message_delta", { delta: { stop_reason: "tool_use" }, usage: { output_tokens: 9 } });
    } else if (tools?.length) {
      sendText(["It is sunny", " in Paris."]);
      send("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: 6 } });
    } else {
      sendThinking(["Hmm."]);
      sendText(["Hello", " from", " Claude"]);
      send("message_delta", {
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: 6 },
      });
    }
    send("message_stop", {});
    await writeEvents(res, events, fault, hanging);
  });
  mock.url = server.url;
  mock.close = server.close;
  return mock;
}

/** Writes an answer's events, broken as `fault` says. */
async function writeEvents(
  res: ServerResponse,
  events: string[],
  fault: AnthropicFault | undefined,
  hanging: Set<ServerResponse>,
): Promise<void> {
  for (const [i, event] of events.entries()) {
    if (fault && "disconnectAfter" in fault && i === fault.disconnectAfter) {
      res.destroy();
      return;
    }
    if (fault && "endAfter" in fault && i === fault.endAfter) {
      res.end();
      return;
    }
    if (fault && "errorAfter" in fault && i === fault.errorAfter) {
      res.end(`event: error\ndata: ${JSON.stringify({ type: "error", error: fault.error })}\n\n`);
      return;
    }
    if (fault && "stallBeforeStop" in fault && i === events.length - 1) {
      hanging.add(res);
      return;
    }
    if (fault && "eventDelayMs" in fault)
      await new Promise((resolve) => setTimeout(resolve, fault.eventDelayMs));
    // Flushed before going on, so a disconnect comes after these bytes, never instead of them.
    await new Promise((resolve) => res.write(event, resolve));
  }
  res.end();
}

/** The opaque data of the redacted_thinking block the mock sends with its tool calls. */
export const MOCK_REDACTED_THINKING = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIw";

/** The signature the mock gives a thinking text (Anthropic's is opaque; this one can be checked). */
export function mockThinkingSignature(thinking: string): string {
  return createHash("sha256").update(`mock thinking: ${thinking}`).digest("base64");
}

type WireMessage = { role: string; content: unknown };
type WireBlock = { type?: string; text?: string; thinking?: string; signature?: string; data?: string };

/** The request's last turn is a user turn that answers tool calls. */
function answersToolResults(body: Record<string, unknown>): boolean {
  const last = ((body.messages ?? []) as WireMessage[]).at(-1);
  return (
    last?.role === "user" &&
    Array.isArray(last.content) &&
    (last.content as WireBlock[]).some((block) => block.type === "tool_result")
  );
}

/**
 * Rules of the Messages API that its request types cannot say, as Anthropic words its 400s: no
 * turn without content but a final assistant one; thinking blocks come back as they were sent
 * (the signature checks the text); with thinking on, a last assistant turn with tool calls opens
 * with its thinking. A broken rule is recorded in `violations` too: the test fails where it
 * happened.
 */
function conversationProblem(mock: MockAnthropic, body: Record<string, unknown>): string | undefined {
  const messages = (body.messages ?? []) as WireMessage[];
  const problems: string[] = [];
  if (
    Array.isArray(body.system) &&
    (body.system as WireBlock[]).some((b) => b.type === "text" && b.text === "")
  )
    problems.push("system: text content blocks must be non-empty");
  for (const [i, message] of messages.entries()) {
    if (!Array.isArray(message.content)) continue;
    const finalAssistant = i === messages.length - 1 && message.role === "assistant";
    if (message.content.length === 0 && !finalAssistant) {
      problems.push(
        `messages.${i}: all messages must have non-empty content except for the optional final assistant message`,
      );
    }
    for (const [j, block] of (message.content as WireBlock[]).entries()) {
      if (block.type === "text" && block.text === "")
        problems.push(`messages.${i}.content.${j}: text content blocks must be non-empty`);
      const forged =
        (block.type === "thinking" && block.signature !== mockThinkingSignature(block.thinking ?? "")) ||
        (block.type === "redacted_thinking" && block.data !== MOCK_REDACTED_THINKING);
      if (forged)
        problems.push(`messages.${i}.content.${j}: Invalid \`signature\` in \`${block.type}\` block`);
    }
  }
  const thinking = (body.thinking as { type?: string } | undefined)?.type === "enabled";
  const lastAssistant = messages.findLastIndex((message) => message.role === "assistant");
  const turn = (messages[lastAssistant]?.content ?? []) as WireBlock[];
  if (thinking && turn.some((block) => block.type === "tool_use")) {
    const first = turn[0]?.type;
    if (first !== "thinking" && first !== "redacted_thinking") {
      problems.push(
        `messages.${lastAssistant}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${first}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block.`,
      );
    }
  }
  if (problems.length === 0) return undefined;
  const problem = problems.join("; ");
  mock.violations.push(problem);
  return problem;
}
