import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { validateConfig } from "../../src/config/load.js";
import { serviceUnavailable } from "../../src/core/errors.js";
import type { GenerationPart } from "../../src/core/generation.js";
import { createLogger } from "../../src/observability/logger.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { ScriptedBackend, scriptedRegistry } from "../helpers/scripted-backend.js";

/**
 * Parts no local engine produces yet — tool calls, reasoning, refusals — go through the chat
 * encoder as the OpenAI spec shapes them, streamed and not, and failures mid-stream keep their
 * message. A scripted backend plays the parts.
 */

const TOOL_CALL_SCRIPT: GenerationPart[] = [
  { type: "reasoning", choice: 0, text: "The user wants " },
  { type: "reasoning", choice: 0, text: "the weather." },
  { type: "tool-call", choice: 0, index: 0, id: "call_a1", name: "get_weather", argumentsDelta: '{"city":' },
  { type: "tool-call", choice: 0, index: 0, argumentsDelta: '"Paris"}' },
  { type: "tool-call", choice: 0, index: 1, id: "call_b2", name: "get_time", argumentsDelta: "" },
  { type: "tool-call", choice: 0, index: 1, argumentsDelta: '{"tz":"CET"}' },
  { type: "finish", choice: 0, reason: "tool_calls" },
  { type: "usage", promptTokens: 10, completionTokens: 9, cachedTokens: 0, reasoningTokens: 4 },
];

const TOOLS: OpenAI.Chat.ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", parameters: { type: "object" } } },
  { type: "function", function: { name: "get_time", parameters: { type: "object" } } },
];

describe("tool-call, reasoning and refusal parts through the chat API", () => {
  const backend = new ScriptedBackend(TOOL_CALL_SCRIPT);
  let server: RunningServer;
  let client: OpenAI;

  beforeAll(async () => {
    const config = validateConfig({
      port: 0,
      demo_model: false,
      data_dir: mkdtempSync(join(tmpdir(), "sb-parts-")),
    });
    server = await startServer(config, {
      logger: createLogger("silent"),
      registry: scriptedRegistry(backend),
    });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(() => {
    backend.script = TOOL_CALL_SCRIPT;
  });

  const ask = { model: "scripted", messages: [{ role: "user" as const, content: "Weather in Paris?" }] };

  it("hands tools, tool_choice and the response format to the backend as a constraint", async () => {
    await client.chat.completions.create({
      ...ask,
      tools: TOOLS,
      tool_choice: "required",
      parallel_tool_calls: true,
    });
    expect(backend.requests.at(-1)?.constraint?.tools).toMatchObject({
      choice: { mode: "required" },
      parallel: true,
      param: "tools",
    });
  });

  it("collects tool calls and reasoning into one message", async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...ask, tools: TOOLS }),
    });
    const body = (await res.json()) as {
      choices: { finish_reason: string; message: Record<string, unknown> }[];
      usage: { completion_tokens_details: { reasoning_tokens: number } };
    };
    expectMatchesSchema(body, "CreateChatCompletionResponse");
    const choice = body.choices[0] as (typeof body.choices)[number];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message).toMatchObject({
      role: "assistant",
      content: null,
      reasoning_content: "The user wants the weather.",
      tool_calls: [
        { id: "call_a1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
        { id: "call_b2", type: "function", function: { name: "get_time", arguments: '{"tz":"CET"}' } },
      ],
    });
    expect(body.usage.completion_tokens_details.reasoning_tokens).toBe(4);
  });

  it("streams tool-call deltas the official SDK accumulates into the same calls", async () => {
    const stream = client.chat.completions.stream({ ...ask, tools: TOOLS });
    const final = await stream.finalChatCompletion();
    const message = final.choices[0]?.message;
    expect(final.choices[0]?.finish_reason).toBe("tool_calls");
    expect(
      message?.tool_calls?.map((c) => c.type === "function" && [c.id, c.function.name, c.function.arguments]),
    ).toEqual([
      ["call_a1", "get_weather", '{"city":"Paris"}'],
      ["call_b2", "get_time", '{"tz":"CET"}'],
    ]);
  });

  it("streams reasoning as reasoning_content deltas and tool calls by index, each chunk as the spec shapes it", async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...ask, tools: TOOLS, stream: true }),
    });
    const text = await res.text();
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    const chunks = text
      .split("\n\n")
      .filter((frame) => frame.startsWith("data: {"))
      .map((frame) => JSON.parse(frame.slice(6)));
    for (const chunk of chunks) expectMatchesSchema(chunk, "CreateChatCompletionStreamResponse");
    const deltas = chunks.map((c) => c.choices[0]?.delta).filter(Boolean);
    expect(deltas.filter((d) => d.reasoning_content).map((d) => d.reasoning_content)).toEqual([
      "The user wants ",
      "the weather.",
    ]);
    const calls = deltas.filter((d) => d.tool_calls).map((d) => d.tool_calls[0]);
    expect(calls[0]).toEqual({
      index: 0,
      id: "call_a1",
      type: "function",
      function: { name: "get_weather", arguments: '{"city":' },
    });
    expect(calls[1]).toEqual({ index: 0, function: { arguments: '"Paris"}' } });
    expect(calls[2]).toMatchObject({ index: 1, id: "call_b2", function: { name: "get_time" } });
  });

  it("carries a refusal as the message's refusal, streamed and not", async () => {
    backend.script = [
      { type: "refusal", choice: 0, text: "I can't help with that." },
      { type: "finish", choice: 0, reason: "stop" },
      { type: "usage", promptTokens: 10, completionTokens: 6, cachedTokens: 0 },
    ];
    const completion = await client.chat.completions.create(ask);
    expect(completion.choices[0]?.message).toMatchObject({ content: "", refusal: "I can't help with that." });
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    let refusal = "";
    for await (const chunk of stream) refusal += chunk.choices[0]?.delta.refusal ?? "";
    expect(refusal).toBe("I can't help with that.");
  });

  it("ends a stream that fails mid-way with an error frame keeping our message, and no [DONE]", async () => {
    for (const [error, message] of [
      [
        serviceUnavailable("The model 'scripted' is restarting after a failure; retry shortly."),
        "is restarting",
      ],
      [
        new Error("/secret/path/engine.ts exploded"),
        "The server had an error while generating this response.",
      ],
    ] as const) {
      backend.script = [{ type: "text", choice: 0, text: "Hel" }, { throw: error }];
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...ask, stream: true }),
      });
      const text = await res.text();
      expect(text).not.toContain("[DONE]");
      expect(text).not.toContain("/secret/path");
      const last = text.trim().split("\n\n").at(-1) ?? "";
      const frame = JSON.parse(last.slice("data: ".length));
      expectMatchesSchema(frame, "ErrorResponse");
      expect(frame.error.message).toContain(message);
    }
  });

  it("answers the same failure before the first part as a JSON error with its status", async () => {
    backend.script = [{ throw: serviceUnavailable("The model 'scripted' is restarting; retry shortly.") }];
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...ask, stream: true }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("service_unavailable");
  });
});
