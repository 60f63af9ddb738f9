import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { describe, expect, it } from "vitest";
import { failureOf } from "./helpers/gateway.js";
import { MOCK_THOUGHT_SIGNATURE, startMockGeminiUpstream } from "./helpers/mock-gemini-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const KEY = "AIzaSy-test-secret-gemini-42";

const weatherTool = {
  type: "function" as const,
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: ["string", "null"], enum: ["c", "f"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};

describe("a Gemini upstream behind the OpenAI API", () => {
  const env = useMockProviderGateway({
    start: startMockGeminiUpstream,
    models: (url) => [
      {
        id: "gemini",
        deployments: [
          {
            provider: "gemini",
            base_url: `${url}/v1beta`,
            api_key: KEY,
            model: "gemini-test",
            max_retries: 1,
          },
        ],
      },
    ],
  });

  it("answers a chat: system and developer messages as systemInstruction, thoughts as reasoning, usage", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "developer", content: "Use English." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Again" },
      ],
      temperature: 0.5,
      top_p: 0.9,
      max_tokens: 50,
      stop: ["END"],
      seed: 7,
      reasoning_effort: "low",
      top_k: 30,
    } as ChatCompletionCreateParamsNonStreaming);
    const message = completion.choices[0]?.message as { content: string; reasoning_content?: string };
    expect(message.content).toBe("Hello from Gemini");
    expect(message.reasoning_content).toBe("Hmm.");
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    expect(completion.usage).toMatchObject({ prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 });
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(4);
    expect(completion.usage?.completion_tokens_details?.reasoning_tokens).toBe(3);
    const sent = env.upstream.requests[0];
    expect(sent?.path).toBe("/v1beta/models/gemini-test:streamGenerateContent?alt=sse");
    expect(sent?.headers["x-goog-api-key"]).toBe(KEY);
    expect(sent?.body).toEqual({
      systemInstruction: { parts: [{ text: "Be brief." }, { text: "Use English." }] },
      contents: [
        { role: "user", parts: [{ text: "Hi" }] },
        { role: "model", parts: [{ text: "Hello." }] },
        { role: "user", parts: [{ text: "Again" }] },
      ],
      generationConfig: {
        temperature: 0.5,
        topP: 0.9,
        topK: 30,
        maxOutputTokens: 50,
        stopSequences: ["END"],
        seed: 7,
        thinkingConfig: { thinkingBudget: 1024, includeThoughts: true },
      },
    });
  });

  it("streams text deltas, sends data-URL images inline, and maps MAX_TOKENS to length", async () => {
    const stream = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
          ],
        },
      ],
      max_tokens: 1,
      stream: true,
    });
    let text = "";
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe("Hello from Gemini");
    expect(finish).toBe("length");
    expect(env.upstream.requests[0]?.body.contents).toEqual([
      {
        role: "user",
        parts: [{ text: "What is this?" }, { inlineData: { mimeType: "image/png", data: "AAAA" } }],
      },
    ]);
  });

  it("returns n choices as Gemini candidates", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [{ role: "user", content: "Hi" }],
      n: 2,
    });
    expect(completion.choices.map((c) => c.message.content)).toEqual([
      "Hello from Gemini",
      "Hello from Gemini",
    ]);
    expect(env.upstream.requests[0]?.body.generationConfig).toEqual({ candidateCount: 2 });
  });

  it("streams function calls the SDK puts back together, and sends results back as functionResponse", async () => {
    const final = await env.gateway.client.chat.completions
      .stream({
        model: "gemini",
        messages: [{ role: "user", content: "Weather?" }],
        tools: [weatherTool],
        tool_choice: { type: "function", function: { name: "get_weather" } },
      })
      .finalChatCompletion();
    const message = final.choices[0]?.message;
    expect(final.choices[0]?.finish_reason).toBe("tool_calls");
    expect(message?.content).toBe("Checking.");
    expect(message?.tool_calls).toEqual([
      {
        // The first call carries Gemini's thought signature in its id (gemini-thought-signatures.test.ts).
        id: expect.stringMatching(/^call_[A-Za-z0-9]+_ts_[A-Za-z0-9_-]+$/),
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Paris"}' },
      },
      {
        id: expect.stringMatching(/^call_[A-Za-z0-9]+$/),
        type: "function",
        function: { name: "get_weather", arguments: '{"city":"Lyon"}' },
      },
    ]);
    expect(env.upstream.requests[0]?.body).toMatchObject({
      tools: [
        {
          functionDeclarations: [
            {
              name: "get_weather",
              description: "Weather for a city",
              parameters: {
                type: "OBJECT",
                properties: {
                  city: { type: "STRING" },
                  unit: { type: "STRING", nullable: true, enum: ["c", "f"] },
                },
                required: ["city", "unit"],
              },
            },
          ],
        },
      ],
      toolConfig: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["get_weather"] } },
    });

    const calls = message?.tool_calls ?? [];
    const answer = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [
        { role: "user", content: "Weather?" },
        { role: "assistant", content: null, tool_calls: calls },
        { role: "tool", tool_call_id: calls[0]?.id ?? "", content: '{"sky":"sunny"}' },
        { role: "tool", tool_call_id: calls[1]?.id ?? "", content: "Rain" },
      ],
      tools: [weatherTool],
    });
    expect(answer.choices[0]?.message.content).toBe("Hello from Gemini");
    expect(env.upstream.requests[1]?.body.contents).toEqual([
      { role: "user", parts: [{ text: "Weather?" }] },
      {
        role: "model",
        parts: [
          {
            functionCall: { name: "get_weather", args: { city: "Paris" } },
            thoughtSignature: MOCK_THOUGHT_SIGNATURE,
          },
          { functionCall: { name: "get_weather", args: { city: "Lyon" } } },
        ],
      },
      {
        role: "user",
        parts: [
          { functionResponse: { name: "get_weather", response: { sky: "sunny" } } },
          { functionResponse: { name: "get_weather", response: { output: "Rain" } } },
        ],
      },
    ]);
    expect(env.upstream.requests[1]?.body.toolConfig).toEqual({ functionCallingConfig: { mode: "AUTO" } });
  });

  it("keeps to one call when parallel_tool_calls is false, and maps allowed_tools to allowedFunctionNames", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [{ role: "user", content: "Weather?" }],
      tools: [weatherTool],
      tool_choice: {
        type: "allowed_tools",
        allowed_tools: { mode: "auto", tools: [{ type: "function", function: { name: "get_weather" } }] },
      },
      parallel_tool_calls: false,
    });
    expect(completion.choices[0]?.message.tool_calls).toHaveLength(1);
    expect(env.upstream.requests[0]?.body.toolConfig).toEqual({
      functionCallingConfig: { mode: "VALIDATED", allowedFunctionNames: ["get_weather"] },
    });
  });

  it("asks for JSON with a responseSchema, and refuses a keyword Gemini cannot take, naming it", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [{ role: "user", content: "The answer?" }],
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "answer",
          strict: true,
          schema: {
            type: "object",
            properties: { answer: { type: "integer", minimum: 0 } },
            required: ["answer"],
            additionalProperties: false,
          },
        },
      },
    });
    expect(JSON.parse(completion.choices[0]?.message.content ?? "")).toEqual({ answer: 42 });
    expect(env.upstream.requests[0]?.body.generationConfig).toEqual({
      responseMimeType: "application/json",
      responseSchema: {
        type: "OBJECT",
        properties: { answer: { type: "INTEGER", minimum: 0 } },
        required: ["answer"],
      },
    });

    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "gemini",
        messages: [{ role: "user", content: "The answer?" }],
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "answer",
            schema: { type: "object", properties: { tags: { type: "array", uniqueItems: true } } },
          },
        },
      }),
    );
    expect(error.status).toBe(400);
    expect(error.param).toBe("response_format.json_schema.schema.properties.tags.uniqueItems");
    expect(error.message).toContain("uniqueItems");
    expect(env.upstream.requests).toHaveLength(1);
  });

  it("sends JSON Schema's count and length limits as the int64 strings of Gemini's Schema", async () => {
    await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [{ role: "user", content: "The answer?" }],
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "answer",
          schema: {
            type: "object",
            properties: {
              answer: { type: "integer", minimum: 0, maximum: 100 },
              tags: {
                type: "array",
                items: { type: "string", minLength: 1, maxLength: 20 },
                minItems: 1,
                maxItems: 3,
              },
              extra: {
                type: "object",
                properties: { note: { type: "string" } },
                minProperties: 0,
                maxProperties: 1,
              },
            },
            required: ["answer", "tags"],
          },
        },
      },
    });
    expect(env.upstream.requests[0]?.body.generationConfig).toEqual({
      responseMimeType: "application/json",
      responseSchema: {
        type: "OBJECT",
        properties: {
          answer: { type: "INTEGER", minimum: 0, maximum: 100 },
          tags: {
            type: "ARRAY",
            items: { type: "STRING", minLength: "1", maxLength: "20" },
            minItems: "1",
            maxItems: "3",
          },
          extra: {
            type: "OBJECT",
            properties: { note: { type: "STRING" } },
            minProperties: "0",
            maxProperties: "1",
          },
        },
        required: ["answer", "tags"],
      },
    });
  });

  it("refuses an image URL with a 400 naming the part, since the server never fetches it", async () => {
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "gemini",
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What is this?" },
              { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
            ],
          },
        ],
      }),
    );
    expect(error.status).toBe(400);
    expect(error.param).toBe("messages[0].content[1]");
    expect(env.upstream.requests).toHaveLength(0);
  });

  it("retries a 429, keeps a 400 a 400, turns a 500 into a 502, and never shows or logs the key", async () => {
    env.upstream.faults.push({ status: 429, message: "Resource has been exhausted" });
    await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [{ role: "user", content: "Hi" }],
    });
    expect(env.upstream.requests).toHaveLength(2);

    env.upstream.faults.push({ status: 400, message: `Invalid value at 'contents' for key ${KEY}` });
    const invalid = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "gemini",
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(invalid.status).toBe(400);
    expect(invalid.message).toContain("Invalid value at 'contents'");
    expect(invalid.message).not.toContain(KEY);

    env.upstream.faults.push(
      { status: 500, message: "Internal error" },
      { status: 500, message: "Internal error" },
    );
    const failed = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "gemini",
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(failed.status).toBe(502);

    for (const request of env.upstream.requests) expect(request.path).not.toContain(KEY);
    expect(env.gateway.logs.join("")).not.toContain(KEY);
  });

  it("creates embeddings with batchEmbedContents", async () => {
    const result = await env.gateway.client.embeddings.create({
      model: "gemini",
      input: ["a", "b"],
      dimensions: 3,
    });
    expect(result.data.map((d) => d.embedding)).toEqual([
      [0, 0.5, -0.25],
      [1, 0.5, -0.25],
    ]);
    const sent = env.upstream.requests[0];
    expect(sent?.path).toBe("/v1beta/models/gemini-test:batchEmbedContents");
    expect(sent?.body).toEqual({
      requests: [
        { model: "models/gemini-test", content: { parts: [{ text: "a" }] }, outputDimensionality: 3 },
        { model: "models/gemini-test", content: { parts: [{ text: "b" }] }, outputDimensionality: 3 },
      ],
    });
  });

  it("refuses token-id input to embeddings with a 400 naming input, sending nothing", async () => {
    const error = await failureOf(
      env.gateway.client.embeddings.create({ model: "gemini", input: [[1, 2, 3]] }),
    );
    expect(error.status).toBe(400);
    expect(error.param).toBe("input");
    expect(error.message).toContain("text only");
    expect(env.upstream.requests).toHaveLength(0);
  });
});
