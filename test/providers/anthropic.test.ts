import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { describe, expect, it } from "vitest";
import { failureOf } from "./helpers/gateway.js";
import { startMockAnthropicUpstream } from "./helpers/mock-anthropic-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const KEY = "sk-ant-test-secret-42";

describe("an Anthropic upstream behind the OpenAI API", () => {
  const env = useMockProviderGateway({
    start: startMockAnthropicUpstream,
    models: (url) => [
      {
        id: "claude",
        deployments: [
          {
            provider: "anthropic",
            base_url: url,
            api_key: KEY,
            model: "claude-test",
            max_retries: 1,
          },
        ],
      },
    ],
  });

  it("answers a chat: system and developer messages hoisted, thinking as reasoning, usage with cache tokens", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "developer", content: "Use English." },
        { role: "user", content: "Hi" },
      ],
      stop: ["END"],
      reasoning_effort: "low",
    });
    const message = completion.choices[0]?.message as { content: string; reasoning_content?: string };
    expect(message.content).toBe("Hello from Claude");
    expect(message.reasoning_content).toBe("Hmm.");
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    expect(completion.usage).toMatchObject({ prompt_tokens: 27, completion_tokens: 6 });
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(5);
    const sent = env.upstream.requests[0];
    expect(sent?.path).toBe("/v1/messages");
    expect(sent?.headers["x-api-key"]).toBe(KEY);
    expect(sent?.headers["anthropic-version"]).toBe("2023-06-01");
    expect(sent?.body).toEqual({
      model: "claude-test",
      max_tokens: 4096,
      stream: true,
      system: [
        { type: "text", text: "Be brief." },
        { type: "text", text: "Use English." },
      ],
      messages: [{ role: "user", content: [{ type: "text", text: "Hi" }] }],
      stop_sequences: ["END"],
      thinking: { type: "enabled", budget_tokens: 1024 },
    });
  });

  it("streams tool calls the SDK puts back together, and sends tool results back as tool_result blocks", async () => {
    const tools = [
      {
        type: "function" as const,
        function: {
          name: "get_weather",
          parameters: { type: "object", properties: { city: { type: "string" } } },
        },
      },
    ];
    const final = await env.gateway.client.chat.completions
      .stream({
        model: "claude",
        messages: [{ role: "user", content: "Weather?" }],
        tools,
        tool_choice: { type: "function", function: { name: "get_weather" } },
        parallel_tool_calls: false,
      })
      .finalChatCompletion();
    const message = final.choices[0]?.message;
    expect(final.choices[0]?.finish_reason).toBe("tool_calls");
    // A forced call comes without text before it (the thinking tests cover text and calls together).
    expect(message?.content).toBeNull();
    expect(message?.tool_calls).toEqual([
      { id: "toolu_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
    ]);
    expect(env.upstream.requests[0]?.body).toMatchObject({
      tools: [{ name: "get_weather", input_schema: { type: "object" } }],
      tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
    });

    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        { role: "user", content: "Weather?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "toolu_1",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Paris"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "toolu_1", content: "Sunny" },
      ],
      tools,
    });
    expect(env.upstream.requests[1]?.body.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "Weather?" }] },
      {
        role: "assistant",
        content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }],
      },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "Sunny" }] },
    ]);
  });

  it("leaves out an assistant turn that said nothing, and sends a refusal-only turn as its text", async () => {
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "" },
        { role: "user", content: "Still there?" },
        { role: "assistant", content: null, refusal: "I can't help with that." },
        { role: "user", content: "Why?" },
        { role: "assistant", content: [] },
      ],
    });
    expect(env.upstream.requests[0]?.body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "Hi" },
          { type: "text", text: "Still there?" },
        ],
      },
      { role: "assistant", content: [{ type: "text", text: "I can't help with that." }] },
      { role: "user", content: [{ type: "text", text: "Why?" }] },
    ]);
  });

  it("leaves out empty texts, which Anthropic refuses and OpenAI takes: an empty user message goes like an empty turn", async () => {
    const requests = env.upstream.requests.length;
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        { role: "system", content: "" },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello?" },
        { role: "user", content: "" },
        {
          role: "user",
          content: [
            { type: "text", text: "" },
            { type: "text", text: "Still there?" },
          ],
        },
      ],
    });
    const body = env.upstream.requests[requests]?.body;
    expect(body?.system).toBeUndefined();
    expect(body?.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "Hi" }] },
      { role: "assistant", content: [{ type: "text", text: "Hello?" }] },
      { role: "user", content: [{ type: "text", text: "Still there?" }] },
    ]);
  });

  it("has a mock that refuses a turn with no content, except a final assistant turn, as Anthropic does", async () => {
    const send = (messages: unknown[]) =>
      fetch(`${env.upstream.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "claude-test", max_tokens: 10, stream: true, messages }),
      });
    const refused = await send([
      { role: "user", content: [{ type: "text", text: "Hi" }] },
      { role: "assistant", content: [] },
      { role: "user", content: [{ type: "text", text: "Hi" }] },
    ]);
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
      "messages.1: all messages must have non-empty content",
    );
    const prefill = await send([
      { role: "user", content: [{ type: "text", text: "Hi" }] },
      { role: "assistant", content: [] },
    ]);
    expect(prefill.status).toBe(200);
    await prefill.text();
    // The refusal above was this test's own doing.
    env.upstream.violations.length = 0;
  });

  it("sends tools whose parameters leave out `type`, or that have none, as the object schemas Anthropic requires", async () => {
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [{ role: "user", content: "Weather?" }],
      tools: [
        {
          type: "function",
          function: { name: "get_weather", parameters: { properties: { city: { type: "string" } } } },
        },
        { type: "function", function: { name: "get_time" } },
      ],
      tool_choice: "none",
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 2000,
    });
    expect(env.upstream.requests[0]?.body).toMatchObject({
      tools: [
        { name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } },
        { name: "get_time", input_schema: { type: "object", properties: {} } },
      ],
      tool_choice: { type: "none" },
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 2000,
    });
  });

  it("refuses an image of a type the Messages API does not take, naming the part", async () => {
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "claude",
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What is this?" },
              { type: "image_url", image_url: { url: "data:image/bmp;base64,Qk0=" } },
            ],
          },
        ],
      }),
    );
    expect(error.status).toBe(400);
    expect(error.param).toBe("messages[0].content[1]");
    expect(env.upstream.requests).toHaveLength(0);
  });

  it("streams text deltas", async () => {
    const stream = await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [
        { role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } }] },
      ],
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("Hello from Claude");
    expect(env.upstream.requests[0]?.body.messages).toEqual([
      {
        role: "user",
        content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "AAAA" } }],
      },
    ]);
  });

  it("retries Anthropic's 529 overloaded, and keeps a 400 a 400 with its message", async () => {
    env.upstream.faults.push({ status: 529, type: "overloaded_error", message: "Overloaded" });
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(env.upstream.requests).toHaveLength(2);

    env.upstream.faults.push({ status: 400, type: "invalid_request_error", message: "prompt is too long" });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "claude",
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(error.status).toBe(400);
    expect(error.message).toContain("prompt is too long");
  });

  it("refuses what the Messages API cannot carry, naming the field", async () => {
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "claude",
        messages: [{ role: "user", content: "Hi" }],
        n: 2,
      }),
    );
    expect(error.status).toBe(400);
    expect(error.param).toBe("n");
    for (const [param, value] of [
      ["min_p", 0.1],
      ["repetition_penalty", 1.2],
    ] as const) {
      const refused = await failureOf(
        env.gateway.client.chat.completions.create({
          model: "claude",
          messages: [{ role: "user", content: "Hi" }],
          [param]: value,
        } as ChatCompletionCreateParamsNonStreaming),
      );
      expect(refused.status).toBe(400);
      expect(refused.param).toBe(param);
    }
    expect(env.upstream.requests).toHaveLength(0);
  });

  it("sends the top_k extension as the Messages API's own top_k", async () => {
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [{ role: "user", content: "Hi" }],
      top_k: 20,
    } as ChatCompletionCreateParamsNonStreaming);
    expect(env.upstream.requests[0]?.body).toMatchObject({ top_k: 20 });
  });
  it("keeps the thinking budget below max_tokens, and refuses reasoning_effort when max_tokens leaves no room for it", async () => {
    await env.gateway.client.chat.completions.create({
      model: "claude",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 1500,
      reasoning_effort: "medium",
    });
    expect(env.upstream.requests[0]?.body).toMatchObject({
      max_tokens: 1500,
      thinking: { type: "enabled", budget_tokens: 1499 },
    });
    for (const max_tokens of [1024, 200]) {
      const refused = await failureOf(
        env.gateway.client.chat.completions.create({
          model: "claude",
          messages: [{ role: "user", content: "Hi" }],
          max_tokens,
          reasoning_effort: "low",
        }),
      );
      expect(refused.status).toBe(400);
      expect(refused.param).toBe("reasoning_effort");
      expect(refused.message).toContain(`above 1024`);
    }
    expect(env.upstream.requests).toHaveLength(1);
  });
});
