import { randomBytes } from "node:crypto";
import { deflateRawSync } from "node:zlib";
import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { AnthropicEventDecoder } from "../../src/backends/providers/anthropic/event-decoder.js";
import { anthropicMessagesBody } from "../../src/backends/providers/anthropic/messages-request.js";
import {
  idWithThinking,
  MAX_CARRYING_ID,
  type SignedThinking,
  thinkingOf,
  upstreamCallId,
} from "../../src/backends/providers/anthropic/thinking-in-call-id.js";
import type { GenerationPart, GenerationRequest } from "../../src/core/generation.js";
import {
  MOCK_REDACTED_THINKING,
  mockThinkingSignature,
  startMockAnthropicUpstream,
} from "./helpers/mock-anthropic-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const BLOCKS: SignedThinking[] = [
  { type: "thinking", thinking: 'Weather → a tool, ünïcode & "quotes"', signature: "EqQBCgIYAhIM+/8=" },
  { type: "redacted_thinking", data: "EmwKAhgBEgy3va3pzix/LafPsn4a" },
];

const payloadId = (json: string | Buffer) => `toolu_1_th_${deflateRawSync(json).toString("base64url")}`;

describe("Anthropic's signed thinking in tool-call ids", () => {
  it("carries the blocks exactly, in an id of [A-Za-z0-9_-] that gives back Anthropic's own", () => {
    const id = idWithThinking("toolu_01A09q90qw90lq917835lq9", BLOCKS);
    expect(id).toMatch(/^toolu_01A09q90qw90lq917835lq9_th_[A-Za-z0-9_-]+$/);
    expect(thinkingOf(id)).toEqual(BLOCKS);
    expect(upstreamCallId(id)).toBe("toolu_01A09q90qw90lq917835lq9");
    // Nothing to carry, or an id not of Anthropic's form: the id as it was.
    expect(idWithThinking("toolu_1", [])).toBe("toolu_1");
    for (const id of ["call_abc_def", "toolu-1", "call.1"]) {
      expect(idWithThinking(id, BLOCKS)).toBe(id);
      expect(upstreamCallId(id)).toBe(id);
    }
    expect(thinkingOf("toolu_1")).toEqual([]);
  });

  it("keeps ids bounded: blocks too large for one are not carried", () => {
    // Random bytes do not deflate: this signature alone would take the id past its bound.
    const signature = randomBytes(30_000).toString("base64");
    const id = idWithThinking("toolu_1", [{ type: "thinking", thinking: "x", signature }]);
    expect(id).toBe("toolu_1");
    const fits = idWithThinking("toolu_1", [
      { type: "thinking", thinking: "y".repeat(50_000), signature: "s" },
    ]);
    expect(fits.length).toBeLessThanOrEqual(MAX_CARRYING_ID);
    expect(thinkingOf(fits)[0]).toMatchObject({ thinking: "y".repeat(50_000) });
  });

  it("reads a tampered id as carrying nothing, never throwing, and still names Anthropic's id", () => {
    const good = idWithThinking("toolu_1", BLOCKS);
    const flipped = `${good.slice(0, 20)}${good[20] === "A" ? "B" : "A"}${good.slice(21)}`;
    const tampered = [
      flipped,
      "toolu_1_th_AAAA",
      "toolu_1_th_-_-_",
      payloadId('{"type":"thinking"}'),
      payloadId('[["t","text"]]'),
      payloadId('[["t","text",""]]'),
      payloadId('[["x","a","b"]]'),
      payloadId('[["t",1,"sig"]]'),
      payloadId("[]"),
      // Inflates far past what an id may hold.
      payloadId(Buffer.alloc(4 << 20, 0x20)),
    ];
    for (const id of tampered) {
      expect(() => thinkingOf(id)).not.toThrow();
      const blocks = thinkingOf(id);
      // Either nothing, or (a flip that still inflated) only well-formed blocks.
      for (const block of blocks) expect(["thinking", "redacted_thinking"]).toContain(block.type);
      expect(upstreamCallId(id)).toBe("toolu_1");
    }
    expect(thinkingOf(payloadId(Buffer.alloc(4 << 20, 0x20)))).toEqual([]);
  });
});

/** The decoder's parts for these Messages API events. */
function decode(events: Record<string, unknown>[]): GenerationPart[] {
  const decoder = new AnthropicEventDecoder();
  const parts = events.flatMap((data, i) =>
    decoder.read({ event: String(data.type), data: JSON.stringify(data), id: String(i) }),
  );
  return [...parts, ...decoder.finish()];
}

const thinkingEvents = (index: number, thinking: string, signature: string | undefined) => [
  { type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } },
  { type: "content_block_delta", index, delta: { type: "thinking_delta", thinking } },
  ...(signature === undefined
    ? []
    : [{ type: "content_block_delta", index, delta: { type: "signature_delta", signature } }]),
  { type: "content_block_stop", index },
];
const callEvents = (index: number, id: string) => [
  { type: "content_block_start", index, content_block: { type: "tool_use", id, name: "f", input: {} } },
  { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: "{}" } },
  { type: "content_block_stop", index },
];
const END = [
  { type: "message_delta", delta: { stop_reason: "tool_use" }, usage: { output_tokens: 3 } },
  { type: "message_stop" },
];
const idsOf = (parts: GenerationPart[]) =>
  parts.flatMap((part) => (part.type === "tool-call" && part.id !== undefined ? [part.id] : []));

describe("the decoder and the request builder with signed thinking", () => {
  it("gives each call the thinking since the call before it (interleaved thinking), and puts it back there", () => {
    const parts = decode([
      { type: "message_start", message: { usage: { input_tokens: 1 } } },
      ...thinkingEvents(0, "First.", "sig-1"),
      ...callEvents(1, "toolu_a"),
      ...thinkingEvents(2, "Second.", "sig-2"),
      ...callEvents(3, "toolu_b"),
      ...callEvents(4, "toolu_c"),
      ...END,
    ]);
    const [a, b, c] = idsOf(parts);
    expect(thinkingOf(a as string)).toEqual([{ type: "thinking", thinking: "First.", signature: "sig-1" }]);
    expect(thinkingOf(b as string)).toEqual([{ type: "thinking", thinking: "Second.", signature: "sig-2" }]);
    expect(c).toBe("toolu_c");

    const req = {
      model: "claude",
      input: {
        kind: "chat",
        messages: [
          { role: "user", content: [{ type: "text", text: "Go" }] },
          {
            role: "assistant",
            content: [],
            toolCalls: [a, b, c].map((id) => ({ id: id as string, name: "f", arguments: "{}" })),
          },
          ...[a, b, c].map((id) => ({ role: "tool", toolCallId: id as string, content: [] })),
        ],
      },
      sampling: { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0 },
      stop: [],
      n: 1,
      reasoningEffort: "low",
    } as unknown as GenerationRequest;
    const body = anthropicMessagesBody(req, "claude-test", 4096) as { messages: { content: unknown[] }[] };
    expect(body.messages[1]?.content).toEqual([
      { type: "thinking", thinking: "First.", signature: "sig-1" },
      { type: "tool_use", id: "toolu_a", name: "f", input: {} },
      { type: "thinking", thinking: "Second.", signature: "sig-2" },
      { type: "tool_use", id: "toolu_b", name: "f", input: {} },
      { type: "tool_use", id: "toolu_c", name: "f", input: {} },
    ]);
    expect(body.messages[2]?.content).toEqual(
      ["toolu_a", "toolu_b", "toolu_c"].map((id) => ({ type: "tool_result", tool_use_id: id, content: "" })),
    );
  });

  it("carries nothing when a thinking block never got its signature", () => {
    const parts = decode([
      { type: "message_start", message: { usage: { input_tokens: 1 } } },
      ...thinkingEvents(0, "Unsigned.", undefined),
      ...callEvents(1, "toolu_a"),
      ...END,
    ]);
    expect(idsOf(parts)).toEqual(["toolu_a"]);
    expect(parts).toContainEqual({ type: "reasoning", choice: 0, text: "Unsigned." });
  });
});

const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: "function",
    function: {
      name: "get_weather",
      parameters: { type: "object", properties: { city: { type: "string" } } },
    },
  },
];
const question: OpenAI.ChatCompletionMessageParam = { role: "user", content: "Weather in Paris?" };
const THOUGHT = "I should look up the weather.";

describe("a tool loop with extended thinking on an Anthropic upstream", () => {
  const env = useMockProviderGateway({
    start: startMockAnthropicUpstream,
    models: (url) => [
      {
        id: "claude",
        deployments: [{ provider: "anthropic", base_url: url, model: "claude-test", max_retries: 0 }],
      },
    ],
  });

  /** The assistant turn Anthropic must get back: its signed thinking first, as it was sent. */
  const signedTurn = {
    role: "assistant",
    content: [
      { type: "thinking", thinking: THOUGHT, signature: mockThinkingSignature(THOUGHT) },
      { type: "redacted_thinking", data: MOCK_REDACTED_THINKING },
      { type: "text", text: "Checking." },
      { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
    ],
  };
  const toolResult = (id: string): OpenAI.ChatCompletionMessageParam => ({
    role: "tool",
    tool_call_id: id,
    content: "Sunny, 24°C",
  });

  it("sends the signed thinking back before the tool calls on the next turn (not streamed)", async () => {
    const first = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [question],
      tools,
      reasoning_effort: "low",
    });
    const message = first.choices[0]?.message as OpenAI.ChatCompletionMessage & {
      reasoning_content?: string;
    };
    expect(first.choices[0]?.finish_reason).toBe("tool_calls");
    expect(message.reasoning_content).toBe(THOUGHT);
    const call = message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^toolu_1_th_[A-Za-z0-9_-]+$/);
    expect(call.function).toEqual({ name: "get_weather", arguments: '{"city": "Paris"}' });

    const second = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [question, message, toolResult(call.id)],
      tools,
      reasoning_effort: "low",
    });
    expect(second.choices[0]?.message.content).toBe("It is sunny in Paris.");
    const sent = env.upstream.requests[1]?.body;
    expect(sent?.thinking).toEqual({ type: "enabled", budget_tokens: 1024 });
    expect(sent?.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "Weather in Paris?" }] },
      signedTurn,
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "Sunny, 24°C" }] },
    ]);
  });

  it("does the same when both turns stream", async () => {
    const first = await env.gateway.client.chat.completions
      .stream({ model: "claude", messages: [question], tools, reasoning_effort: "medium", max_tokens: 2000 })
      .finalChatCompletion();
    const message = first.choices[0]?.message;
    const call = message?.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^toolu_1_th_/);
    const stream = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        question,
        { role: "assistant", content: message?.content ?? null, tool_calls: [call] },
        toolResult(call.id),
      ],
      tools,
      reasoning_effort: "medium",
      max_tokens: 2000,
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("It is sunny in Paris.");
    expect(env.upstream.requests[1]?.body).toMatchObject({
      thinking: { type: "enabled", budget_tokens: 1999 },
      messages: [expect.anything(), signedTurn, expect.anything()],
    });
  });

  it("continues without thinking a turn whose call ids lost their thinking (foreign or tampered), and sends none when thinking is off", async () => {
    const carrying = idWithThinking("toolu_1", [
      { type: "thinking", thinking: THOUGHT, signature: mockThinkingSignature(THOUGHT) },
    ]);
    const tampered = `${carrying.slice(0, -6)}AAAAAA`;
    for (const id of ["call_from_another_model", tampered, "toolu_1_th_AAAA"]) {
      env.upstream.requests.length = 0;
      const answer = await env.gateway.client.chat.completions.create({
        model: "claude",
        messages: [
          question,
          {
            role: "assistant",
            content: null,
            tool_calls: [{ id, type: "function", function: { name: "get_weather", arguments: "{}" } }],
          },
          toolResult(id),
        ],
        tools,
        reasoning_effort: "low",
      });
      expect(answer.choices[0]?.message.content).toBe("It is sunny in Paris.");
      const sent = env.upstream.requests[0]?.body;
      expect(sent?.thinking).toBeUndefined();
      const [, turn, result] = (sent?.messages ?? []) as { content: Record<string, unknown>[] }[];
      expect(turn?.content.map((block) => block.type)).toEqual(["tool_use"]);
      expect(turn?.content[0]?.id).toBe(upstreamCallId(id));
      expect(result?.content[0]?.tool_use_id).toBe(upstreamCallId(id));
    }

    env.upstream.requests.length = 0;
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        question,
        {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: carrying, type: "function", function: { name: "get_weather", arguments: "{}" } },
          ],
        },
        toolResult(carrying),
      ],
      tools,
    });
    const messages = (env.upstream.requests[0]?.body.messages ?? []) as { content: { type: string }[] }[];
    const turn = messages[1];
    expect(turn?.content.map((block) => block.type)).toEqual(["tool_use"]);
  });

  it("has a mock that refuses, as Anthropic does, a thinking tool loop without the thinking or with it altered", async () => {
    const send = (turn: unknown) =>
      fetch(`${env.upstream.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "claude-test",
          max_tokens: 2000,
          stream: true,
          thinking: { type: "enabled", budget_tokens: 1024 },
          messages: [
            { role: "user", content: [{ type: "text", text: "Weather?" }] },
            turn,
            { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "Sunny" }] },
          ],
        }),
      });
    const messageOf = async (response: Response) =>
      ((await response.json()) as { error: { message: string } }).error.message;
    const unsigned = await send({ role: "assistant", content: signedTurn.content.slice(2) });
    expect(unsigned.status).toBe(400);
    expect(await messageOf(unsigned)).toContain("must start with a thinking block");
    const altered = await send({
      role: "assistant",
      content: [{ ...signedTurn.content[0], thinking: "Something else." }, ...signedTurn.content.slice(1)],
    });
    expect(altered.status).toBe(400);
    expect(await messageOf(altered)).toContain("Invalid `signature`");
    const whole = await send(signedTurn);
    expect(whole.status).toBe(200);
    await whole.text();
    env.upstream.violations.length = 0;
  });
});
