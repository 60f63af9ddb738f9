import { describe, expect, it } from "vitest";
import { type ChatRequest, chatRequestSchema } from "../../src/api/chat/schema.js";
import { type ChatLimits, toGenerationRequest } from "../../src/api/chat/service.js";
import { ServiceError } from "../../src/core/errors.js";
import type { BackendCapabilities } from "../../src/core/generation.js";
import { assertSupported } from "../../src/generation/support.js";

const limits: ChatLimits = { maxN: 8 };

/** What today's local models can do: no tools, no structured outputs, text only. */
const LOCAL: BackendCapabilities = {
  chat: true,
  completions: true,
  embeddings: false,
  tools: false,
  structuredOutputs: false,
  vision: false,
  audioInput: false,
  fileInput: false,
  logprobs: true,
};

/** A wire request as the route sees it after validation. */
function chat(extra: Record<string, unknown> = {}): ChatRequest {
  return chatRequestSchema.parse({ model: "tiny", messages: [{ role: "user", content: "Hi" }], ...extra });
}

function map(extra: Record<string, unknown> = {}, chatLimits: ChatLimits = limits) {
  return toGenerationRequest(chat(extra), "tiny-resolved", chatLimits);
}

/**
 * The ServiceError thrown for the request, by the mapping or by the support check for a backend
 * with `caps`; checks it is a 400.
 */
function refusal(
  extra: Record<string, unknown>,
  chatLimits: ChatLimits = limits,
  caps = LOCAL,
): ServiceError {
  try {
    assertSupported(map(extra, chatLimits), caps, "tiny");
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).status).toBe(400);
    expect((err as ServiceError).kind).toBe("invalid_request");
    return err as ServiceError;
  }
  throw new Error(`expected a refusal for ${JSON.stringify(extra)}`);
}

const text = (value: string) => ({ type: "text", text: value });

describe("toGenerationRequest mapping", () => {
  it("fills the defaults", () => {
    expect(map()).toEqual({
      model: "tiny-resolved",
      input: { kind: "chat", messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }] },
      sampling: {
        temperature: 1,
        topP: 1,
        seed: undefined,
        presencePenalty: 0,
        frequencyPenalty: 0,
        logitBias: undefined,
      },
      maxTokens: undefined,
      stop: [],
      n: 1,
      logprobs: undefined,
      constraint: undefined,
    });
  });

  it("treats explicit nulls as the defaults", () => {
    const req = map({ temperature: null, top_p: null, n: null, stop: null, seed: null, max_tokens: null });
    expect(req.sampling).toMatchObject({ temperature: 1, topP: 1, seed: undefined });
    expect(req).toMatchObject({ n: 1, stop: [], maxTokens: undefined });
  });

  it("maps the sampling fields", () => {
    const req = map({
      temperature: 0,
      top_p: 0.5,
      presence_penalty: 1.5,
      frequency_penalty: -0.5,
      logit_bias: { "42": -100, "7": 3 },
      seed: 1234,
    });
    expect(req.sampling).toEqual({
      temperature: 0,
      topP: 0.5,
      seed: 1234,
      presencePenalty: 1.5,
      frequencyPenalty: -0.5,
      logitBias: new Map([
        [42, -100],
        [7, 3],
      ]),
    });
  });

  it("turns a stop string into an array and keeps an array", () => {
    expect(map({ stop: "\n" }).stop).toEqual(["\n"]);
    expect(map({ stop: ["a", "b"] }).stop).toEqual(["a", "b"]);
  });

  it("prefers max_completion_tokens and accepts the legacy max_tokens", () => {
    expect(map({ max_completion_tokens: 16 }).maxTokens).toBe(16);
    expect(map({ max_tokens: 32 }).maxTokens).toBe(32);
    expect(map({ max_tokens: 8, max_completion_tokens: 8 }).maxTokens).toBe(8);
    expect(map({ max_tokens: null, max_completion_tokens: 12 }).maxTokens).toBe(12);
  });

  it("refuses conflicting max_tokens and max_completion_tokens", () => {
    expect(refusal({ max_tokens: 8, max_completion_tokens: 9 }).param).toBe("max_tokens");
  });

  it("maps logprobs and top_logprobs", () => {
    expect(map({ logprobs: true }).logprobs).toEqual({ top: 0 });
    expect(map({ logprobs: true, top_logprobs: 5 }).logprobs).toEqual({ top: 5 });
    expect(map({ logprobs: false }).logprobs).toBeUndefined();
  });

  it("folds seeds into 32 bits deterministically", () => {
    expect(map({ seed: 0 }).sampling.seed).toBe(0);
    expect(map({ seed: 2 ** 32 - 1 }).sampling.seed).toBe(2 ** 32 - 1);
    expect(map({ seed: 2 ** 32 }).sampling.seed).toBe(0);
    expect(map({ seed: 2 ** 32 + 5 }).sampling.seed).toBe(5);
    expect(map({ seed: -1 }).sampling.seed).toBe(2 ** 32 - 1);
    expect(map({ seed: -(2 ** 32) - 2 }).sampling.seed).toBe(2 ** 32 - 2);
    const big = map({ seed: Number.MAX_SAFE_INTEGER }).sampling.seed as number;
    expect(Number.isInteger(big) && big >= 0 && big < 2 ** 32).toBe(true);
    expect(map({ seed: Number.MAX_SAFE_INTEGER }).sampling.seed).toBe(big);
  });

  it("passes n up to the limit", () => {
    expect(map({ n: 8 }).n).toBe(8);
  });

  it("maps every message role, keeping text parts, refusals and names", () => {
    const req = map({
      messages: [
        { role: "system", content: "Be brief.", name: "sys" },
        {
          role: "developer",
          content: [
            { type: "text", text: "Dev " },
            { type: "text", text: "rules" },
          ],
        },
        {
          role: "user",
          content: [
            { type: "text", text: "Hello " },
            { type: "text", text: "there" },
          ],
          name: "ann",
        },
        { role: "assistant", content: null },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Sure" },
            { type: "refusal", refusal: "; no" },
          ],
        },
        { role: "assistant", content: "Hi", tool_calls: [] },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { role: "tool", content: "42", tool_call_id: "call_1" },
      ],
    });
    expect(req.input).toEqual({
      kind: "chat",
      messages: [
        { role: "system", content: [text("Be brief.")], name: "sys" },
        { role: "developer", content: [text("Dev "), text("rules")] },
        { role: "user", content: [text("Hello "), text("there")], name: "ann" },
        { role: "assistant", content: [] },
        { role: "assistant", content: [text("Sure")], refusal: "; no" },
        { role: "assistant", content: [text("Hi")] },
        { role: "assistant", content: [], toolCalls: [{ id: "call_1", name: "f", arguments: "{}" }] },
        { role: "tool", content: [text("42")], toolCallId: "call_1" },
      ],
    });
  });

  it("lets through the harmless values of refused features", () => {
    expect(() => map({ tools: [], tool_choice: "none", response_format: { type: "text" } })).not.toThrow();
    expect(() =>
      map({ store: false, modalities: ["text"], stream: true, stream_options: { include_usage: true } }),
    ).not.toThrow();
    expect(() => map({ top_logprobs: null, prompt_cache_retention: "in_memory" })).not.toThrow();
  });
});

describe("toGenerationRequest refusals", () => {
  it("refuses tools and their relatives on a backend without tools, naming the field", () => {
    const tools = refusal({
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
    });
    expect(tools.param).toBe("tools");
    expect(tools.code).toBe("unsupported_parameter");
    expect(refusal({ tool_choice: "required" }).param).toBe("tool_choice");
    expect(refusal({ functions: [{ name: "f" }] }).param).toBe("functions");
    const named = { type: "function", function: { name: "g" } };
    const oneTool = [{ type: "function", function: { name: "f" } }];
    expect(refusal({ tools: oneTool, tool_choice: named }, limits, { ...LOCAL, tools: true }).param).toBe(
      "tool_choice",
    );
  });

  it("maps tools, tool_choice and response_format to the output constraint", () => {
    const request = map({
      tools: [
        { type: "function", function: { name: "get_weather", parameters: { type: "object" }, strict: true } },
      ],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "w", schema: { type: "object" } } },
    });
    expect(request.constraint).toEqual({
      tools: {
        definitions: [
          {
            name: "get_weather",
            description: undefined,
            parameters: { type: "object" },
            strict: true,
            param: "tools[0].function.parameters",
          },
        ],
        choice: { mode: "named", name: "get_weather" },
        parallel: false,
        param: "tools",
      },
      format: {
        param: "response_format",
        schemaParam: "response_format.json_schema.schema",
        value: { type: "json_schema", name: "w", schema: { type: "object" }, strict: false },
      },
    });
    expect(() =>
      assertSupported(request, { ...LOCAL, tools: true, structuredOutputs: true }, "m"),
    ).not.toThrow();
  });

  it("refuses response_format json_object and json_schema on a backend without them", () => {
    const jsonObject = refusal({ response_format: { type: "json_object" } });
    expect(jsonObject.param).toBe("response_format");
    expect(jsonObject.code).toBe("unsupported_parameter");
    const schema = { type: "json_schema", json_schema: { name: "x", schema: { type: "object" } } };
    expect(refusal({ response_format: schema }).param).toBe("response_format");
  });

  it("refuses store: true", () => {
    expect(refusal({ store: true }).param).toBe("store");
  });

  it("refuses audio output", () => {
    expect(refusal({ modalities: ["text", "audio"] }).param).toBe("modalities");
    expect(refusal({ audio: { voice: "alloy", format: "wav" } }).param).toBe("audio");
  });

  it("refuses image parts, naming the part", () => {
    const messages = [
      {
        role: "user",
        content: [
          { type: "text", text: "What is this?" },
          { type: "image_url", image_url: { url: "https://example.com/a.png" } },
        ],
      },
    ];
    const noVision = refusal({ messages });
    expect(noVision.param).toBe("messages[0].content[1]");
    expect(noVision.code).toBe("unsupported_content");
    // A backend that takes images gets them as an image part, by URL.
    const request = map({ messages });
    expect(() => assertSupported(request, { ...LOCAL, vision: true }, "m")).not.toThrow();
    const [message] = request.input.kind === "chat" ? request.input.messages : [];
    expect(message?.content[1]).toEqual({
      type: "image",
      source: { kind: "url", url: "https://example.com/a.png" },
      detail: undefined,
    });
  });

  it("refuses audio and file parts", () => {
    const audio = [
      { role: "user", content: [{ type: "input_audio", input_audio: { data: "", format: "wav" } }] },
    ];
    expect(refusal({ messages: audio }).param).toBe("messages[0].content[0]");
    const file = [{ role: "user", content: [{ type: "file", file: { file_id: "file-1" } }] }];
    expect(refusal({ messages: file }).param).toBe("messages[0].content[0]");
  });

  it("refuses the function role", () => {
    const messages = [
      { role: "user", content: "Hi" },
      { role: "function", name: "f", content: "{}" },
    ];
    expect(refusal({ messages }).param).toBe("messages[1].role");
  });

  it("refuses assistant tool calls on a backend without tools", () => {
    const toolCalls = [
      { role: "user", content: "Hi" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }],
      },
    ];
    const error = refusal({ messages: toolCalls });
    expect(error.param).toBe("messages[1].tool_calls");
    expect(error.code).toBe("unsupported_parameter");
    const legacy = [{ role: "assistant", content: null, function_call: { name: "f", arguments: "{}" } }];
    expect(refusal({ messages: legacy }).param).toBe("messages[0].tool_calls");
  });

  it("refuses top_logprobs without logprobs", () => {
    expect(refusal({ top_logprobs: 3 }).param).toBe("top_logprobs");
    expect(refusal({ top_logprobs: 3, logprobs: false }).param).toBe("top_logprobs");
  });

  it("refuses stream_options without stream", () => {
    expect(refusal({ stream_options: { include_usage: true } }).param).toBe("stream_options");
    expect(refusal({ stream: false, stream_options: { include_usage: true } }).param).toBe("stream_options");
  });

  it("refuses n above the server's limit", () => {
    const error = refusal({ n: 9 });
    expect(error.param).toBe("n");
    expect(error.message).toContain("8");
  });
});
