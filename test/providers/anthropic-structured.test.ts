import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { failureOf } from "./helpers/gateway.js";
import { startMockAnthropicUpstream } from "./helpers/mock-anthropic-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const schema = {
  type: "object",
  properties: { answer: { type: "number" }, unit: { type: "string" } },
  required: ["answer", "unit"],
  additionalProperties: false,
};
const responseFormat: OpenAI.ResponseFormatJSONSchema = {
  type: "json_schema",
  json_schema: { name: "measurement", schema, strict: true },
};
const ask = [{ role: "user" as const, content: "How tall, in metres?" }];

describe("structured outputs on an Anthropic upstream, through a forced tool call", () => {
  const env = useMockProviderGateway({
    start: startMockAnthropicUpstream,
    models: (url) => [
      {
        id: "claude",
        deployments: [{ provider: "anthropic", base_url: url, model: "claude-test", max_retries: 0 }],
      },
    ],
  });

  it("answers a json_schema response format with the tool's input as the message text (not streamed)", async () => {
    const completion = await env.gateway.client.chat.completions.parse({
      model: "claude",
      messages: ask,
      response_format: responseFormat,
    });
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe("stop");
    expect(choice?.message.content).toBe('{"answer": 42, "unit": "m"}');
    expect(choice?.message.parsed).toEqual({ answer: 42, unit: "m" });
    expect(choice?.message.tool_calls ?? []).toEqual([]);
    const sent = env.upstream.requests[0]?.body;
    expect(sent?.tools).toEqual([
      {
        name: "measurement",
        description: "Give your answer as this tool's input, which must match its schema.",
        input_schema: schema,
      },
    ]);
    expect(sent?.tool_choice).toEqual({ type: "tool", name: "measurement", disable_parallel_tool_use: true });
  });

  it("streams the tool's input as content deltas that make the JSON, ending with stop", async () => {
    const stream = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: ask,
      response_format: responseFormat,
      stream: true,
    });
    const pieces: string[] = [];
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      const content = chunk.choices[0]?.delta.content;
      if (content) pieces.push(content);
      finish = chunk.choices[0]?.finish_reason ?? finish;
      expect(chunk.choices[0]?.delta.tool_calls).toBeUndefined();
    }
    expect(pieces.length).toBeGreaterThan(1);
    expect(JSON.parse(pieces.join(""))).toEqual({ answer: 42, unit: "m" });
    expect(finish).toBe("stop");
  });

  it("answers json_object through a tool that takes any object, and text.format in the Responses API", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: ask,
      response_format: { type: "json_object" },
    });
    expect(JSON.parse(completion.choices[0]?.message.content ?? "")).toEqual({ answer: 42, unit: "m" });
    expect(env.upstream.requests[0]?.body).toMatchObject({
      tools: [{ name: "json_object", input_schema: { type: "object" } }],
      tool_choice: { type: "tool", name: "json_object" },
    });

    const response = await env.gateway.client.responses.create({
      model: "claude",
      input: "How tall, in metres?",
      text: { format: { type: "json_schema", name: "measurement", schema, strict: true } },
    });
    expect(JSON.parse(response.output_text)).toEqual({ answer: 42, unit: "m" });
  });

  it("refuses what a forced tool call cannot carry, naming the field, before asking Anthropic", async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: "function", function: { name: "get_weather" } }];
    const refusals: [Partial<OpenAI.ChatCompletionCreateParamsNonStreaming>, string, string][] = [
      [{ response_format: responseFormat, tools }, "response_format", "cannot take tools"],
      [{ response_format: responseFormat, reasoning_effort: "low" }, "reasoning_effort", "forced tool call"],
      [{ tools, tool_choice: "required", reasoning_effort: "low" }, "tool_choice", "forces a tool call"],
      [
        {
          response_format: { type: "json_schema", json_schema: { name: "list", schema: { type: "array" } } },
        },
        "response_format.json_schema.schema",
        "object schema",
      ],
    ];
    for (const [fields, param, message] of refusals) {
      const error = await failureOf(
        env.gateway.client.chat.completions.create({ model: "claude", messages: ask, ...fields }),
      );
      expect(error.status).toBe(400);
      expect(error.param).toBe(param);
      expect(error.message).toContain(message);
    }
    expect(env.upstream.requests).toHaveLength(0);
  });
});
