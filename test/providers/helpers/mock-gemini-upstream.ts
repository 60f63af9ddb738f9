import type { RecordedRequest } from "./mock-openai-upstream.js";
import { startRecordingServer } from "./recording-server.js";
import {
  checkUpstreamRequest,
  prepareSdkRequestValidators,
  type SchemaCheckedUpstream,
  type UpstreamRequestSchema,
} from "./upstream-request-schemas.js";

/**
 * A Gemini-shaped upstream on loopback, after the generativelanguage API reference:
 * `models/<m>:streamGenerateContent?alt=sse` streamed as GenerateContentResponse chunks (the last
 * with finishReason and usageMetadata), and `models/<m>:batchEmbedContents`. `faults` are error
 * statuses with Google's error body. Like Gemini 3, it signs the first function call of an answer
 * (`thoughtSignature`) and answers 400 when a function call of the current turn comes back without
 * its signature. Every body is checked first against the request type put together from
 * @google/genai's types (test/providers/schemas/provider-request-types.ts): one that does not
 * match is answered 400, as Gemini would, and recorded in `violations`. Each request takes the
 * next fault from `faults` (none: a normal answer), so tests can count calls and break things.
 */
export type GeminiFault =
  /** An error status with Google's error body (and headers, such as retry-after). */
  | { status: number; message: string; headers?: Record<string, string> }
  /** Accept the connection and never answer. */
  | { hang: true }
  /** Send this many chunks of the answer, then destroy the socket. */
  | { disconnectAfter: number }
  /** Streams: an event whose data is not JSON. Embeddings: a 200 whose body is not JSON. */
  | { malformed: true }
  /** Send every chunk but the last (the one with the finish reason), then end the stream cleanly. */
  | { truncated: true }
  /** Send each chunk this long after the previous one (a slow but live stream). */
  | { eventDelayMs: number };

export interface MockGemini extends SchemaCheckedUpstream {
  url: string;
  requests: RecordedRequest[];
  faults: GeminiFault[];
  close(): Promise<void>;
}

const STATUS_NAMES: Readonly<Record<number, string>> = {
  400: "INVALID_ARGUMENT",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

/**
 * What the mock signs its function calls with: opaque base64 of a few hundred bytes, with '+', '/'
 * and padding, as real ones are.
 */
export const MOCK_THOUGHT_SIGNATURE = Buffer.from(
  Array.from({ length: 451 }, (_, i) => (i * 37 + 11) % 256),
).toString("base64");

/**
 * Gemini 3's check: in the current turn (from the last user message with content of its own, not
 * a function's result), the first function call of each model step must carry a thought signature.
 */
function missingSignature(
  contents: { role?: string; parts: Record<string, unknown>[] }[],
): string | undefined {
  let start = 0;
  contents.forEach((content, i) => {
    if (content.role === "user" && content.parts.some((p) => !p.functionResponse)) start = i;
  });
  for (const content of contents.slice(start)) {
    if (content.role !== "model") continue;
    const first = content.parts.find((p) => p.functionCall);
    if (first && typeof first.thoughtSignature !== "string") {
      const name = (first.functionCall as { name?: string }).name;
      return `Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly. Additional data, function call \`${name}\``;
    }
  }
  return undefined;
}

export async function startMockGeminiUpstream(): Promise<MockGemini> {
  prepareSdkRequestValidators("gemini-generate-content", "gemini-batch-embed-contents");
  const mock: MockGemini = { url: "", requests: [], faults: [], violations: [], close: async () => {} };
  const server = await startRecordingServer(mock.requests, async ({ path, body }, req, res, hanging) => {
    const schema: UpstreamRequestSchema = path.includes(":batchEmbedContents")
      ? "gemini-batch-embed-contents"
      : "gemini-generate-content";
    const mismatch = checkUpstreamRequest(mock, { method: req.method, path, body }, schema);
    const fault: GeminiFault | undefined = mismatch
      ? { status: 400, message: mismatch }
      : mock.faults.shift();
    if (fault && "status" in fault) {
      res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
      res.end(
        JSON.stringify({
          error: {
            code: fault.status,
            message: fault.message,
            status: STATUS_NAMES[fault.status] ?? "UNKNOWN",
          },
        }),
      );
      return;
    }
    if (fault && "hang" in fault) {
      hanging.add(res);
      return;
    }
    if (req.url?.includes(":batchEmbedContents")) {
      const requests = body.requests as unknown[];
      res.writeHead(200, { "content-type": "application/json" });
      if (fault && "malformed" in fault) {
        res.end('{"embeddings": [{"values": [0.5,');
        return;
      }
      res.end(JSON.stringify({ embeddings: requests.map((_, i) => ({ values: [i, 0.5, -0.25] })) }));
      return;
    }
    const unsigned = body.contents
      ? missingSignature(body.contents as { role?: string; parts: Record<string, unknown>[] }[])
      : undefined;
    if (unsigned) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: 400, message: unsigned, status: "INVALID_ARGUMENT" } }));
      return;
    }
    if (!req.url?.includes(":streamGenerateContent?alt=sse")) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: 404, message: "not found", status: "NOT_FOUND" } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    if (fault && "malformed" in fault) {
      res.end("data: {not json\r\n\r\n");
      return;
    }
    const answer = answerChunks(body);
    if (fault && "truncated" in fault) answer.pop();
    for (const [i, chunk] of answer.entries()) {
      if (fault && "disconnectAfter" in fault && i === fault.disconnectAfter) {
        res.destroy();
        return;
      }
      if (fault && "eventDelayMs" in fault)
        await new Promise((resolve) => setTimeout(resolve, fault.eventDelayMs));
      // Flushed before going on, so a disconnect comes after these bytes, never instead of them.
      await new Promise((resolve) => res.write(`data: ${JSON.stringify(chunk)}\r\n\r\n`, resolve));
    }
    res.end();
  });
  mock.url = server.url;
  mock.close = server.close;
  return mock;
}

const usageMetadata = {
  promptTokenCount: 21,
  candidatesTokenCount: 6,
  cachedContentTokenCount: 4,
  thoughtsTokenCount: 3,
  totalTokenCount: 30,
};

const candidate = (index: number, parts: unknown[], finishReason?: string) => ({
  index,
  content: { role: "model", parts },
  ...(finishReason && { finishReason }),
});

/** Tool calls when functions are declared (and the last turn is not a function's result), JSON for a schema, text otherwise. */
function answerChunks(body: Record<string, unknown>): unknown[] {
  const config = (body.generationConfig ?? {}) as Record<string, unknown>;
  const contents = body.contents as { parts: Record<string, unknown>[] }[];
  const lastParts = contents.at(-1)?.parts ?? [];
  const tools = body.tools as { functionDeclarations: { name: string }[] }[] | undefined;
  const name = tools?.[0]?.functionDeclarations[0]?.name;
  if (name && !lastParts.some((p) => p.functionResponse)) {
    return [
      { candidates: [candidate(0, [{ text: "Checking." }])] },
      {
        candidates: [
          candidate(
            0,
            [
              // Parallel calls: only the first is signed.
              { functionCall: { name, args: { city: "Paris" } }, thoughtSignature: MOCK_THOUGHT_SIGNATURE },
              { functionCall: { name, args: { city: "Lyon" } } },
            ],
            "STOP",
          ),
        ],
        usageMetadata,
      },
    ];
  }
  if (config.responseSchema) {
    return [
      { candidates: [candidate(0, [{ text: '{"answer":' }])] },
      { candidates: [candidate(0, [{ text: " 42}" }], "STOP")], usageMetadata },
    ];
  }
  const n = typeof config.candidateCount === "number" ? config.candidateCount : 1;
  const thinking = (config.thinkingConfig as { includeThoughts?: boolean } | undefined)?.includeThoughts;
  const chunks: unknown[] = [];
  if (thinking) chunks.push({ candidates: [candidate(0, [{ text: "Hmm.", thought: true }])] });
  for (const text of ["Hello", " from", " Gemini"]) {
    chunks.push({ candidates: Array.from({ length: n }, (_, i) => candidate(i, [{ text }])) });
  }
  const finishReason = config.maxOutputTokens === 1 ? "MAX_TOKENS" : "STOP";
  chunks.push({
    candidates: Array.from({ length: n }, (_, i) => candidate(i, [{ text: "" }], finishReason)),
    usageMetadata,
  });
  return chunks;
}
