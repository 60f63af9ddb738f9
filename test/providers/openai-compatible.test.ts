import { type IncomingMessage, request } from "node:http";
import type { ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import { describe, expect, it } from "vitest";
import { failureOf, readRawStream } from "./helpers/gateway.js";
import { startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const SECRET = "sk-upstream-secret-0123456789";

/** POSTs JSON over node:http (which makes no AbortSignal of its own) and reads the whole answer. */
async function postPlain(url: string, body: unknown): Promise<string> {
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { "content-type": "application/json" } }, resolve);
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
  let text = "";
  for await (const chunk of response) text += chunk;
  return text;
}

describe("an OpenAI-compatible upstream behind the gateway", () => {
  const env = useMockProviderGateway({
    start: startMockOpenAiUpstream,
    models: (url) => [
      {
        id: "remote",
        deployments: [
          {
            provider: "openai-compatible",
            base_url: `${url}/v1`,
            api_key: SECRET,
            model: "upstream-model",
            max_retries: 0,
            timeout_ms: 2_000,
            idle_timeout_ms: 2_000,
          },
        ],
      },
      {
        id: "remote-reasoning",
        deployments: [
          {
            provider: "openai-compatible",
            base_url: `${url}/v1`,
            api_key: SECRET,
            model: "upstream-reasoning-model",
            max_tokens_field: "max_completion_tokens",
            max_retries: 0,
          },
        ],
      },
    ],
    // The timeout tests wait on real clocks.
    timing: "real",
  });

  it("answers a chat with the upstream's text and usage, asking the upstream under its own name", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
      max_tokens: 20,
      temperature: 0.5,
    });
    expect(completion.model).toBe("remote");
    expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    expect(completion.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
    expect(completion.usage?.prompt_tokens_details?.cached_tokens).toBe(3);
    const sent = env.upstream.requests[0];
    expect(sent?.path).toBe("/v1/chat/completions");
    expect(sent?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(sent?.body).toMatchObject({
      model: "upstream-model",
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 20,
      temperature: 0.5,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: [{ type: "text", text: "Hi" }] },
      ],
    });
  });

  it("passes the sampling extensions on as the caller spelled them", async () => {
    await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [{ role: "user", content: "Hi" }],
      top_k: 20,
      min_p: 0.05,
      repetition_penalty: 1.1,
    } as ChatCompletionCreateParamsNonStreaming);
    expect(env.upstream.requests[0]?.body).toMatchObject({ top_k: 20, min_p: 0.05, repetition_penalty: 1.1 });
  });

  it("streams chunks the SDK accumulates, without a usage chunk unless the client asked", async () => {
    const stream = await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
    });
    let text = "";
    let usageChunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.usage) usageChunks++;
    }
    expect(text).toBe("Hello from upstream");
    expect(usageChunks).toBe(0);

    const withUsage = await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const usages = [];
    for await (const chunk of withUsage) if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toEqual([expect.objectContaining({ prompt_tokens: 11, completion_tokens: 7 })]);
  });

  it("keeps one upstream connection alive across streamed answers", async () => {
    const before = env.upstream.connections;
    for (let i = 0; i < 5; i++) {
      const stream = await env.gateway.client.chat.completions.create({
        model: "remote",
        messages: [{ role: "user", content: "Hi" }],
        stream: true,
      });
      for await (const _ of stream);
    }
    // One kept-alive connection serves them all (an earlier test's, or one new one).
    expect(env.upstream.connections - before).toBeLessThanOrEqual(1);
  });

  it("streams tool calls the SDK can put back together, and passes the tools through", async () => {
    const stream = env.gateway.client.chat.completions.stream({
      model: "remote",
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [
        {
          type: "function",
          function: {
            name: "get_weather",
            description: "Weather for a city",
            parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
          },
        },
      ],
      tool_choice: "required",
    });
    const final = await stream.finalChatCompletion();
    const message = final.choices[0]?.message;
    expect(final.choices[0]?.finish_reason).toBe("tool_calls");
    expect(message?.tool_calls).toEqual([
      { id: "call_up1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } },
    ]);
    expect(env.upstream.requests[0]?.body).toMatchObject({
      tool_choice: "required",
      tools: [{ type: "function", function: { name: "get_weather" } }],
    });
  });

  it("sends every chat field it forwards in the shape the spec gives it", async () => {
    const calls = [
      { id: "call_1", type: "function" as const, function: { name: "get_weather", arguments: "{}" } },
    ];
    await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [
        { role: "developer", content: "Be brief." },
        {
          role: "user",
          name: "ann",
          content: [
            { type: "text", text: "Hear, read and look" },
            { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
            { type: "file", file: { file_data: "data:application/pdf;base64,JVBERi0=", filename: "a.pdf" } },
            { type: "image_url", image_url: { url: "data:image/png;base64,AAAA", detail: "low" } },
          ],
        },
        { role: "assistant", content: null, refusal: "Not that.", tool_calls: calls },
        { role: "tool", tool_call_id: "call_1", content: "Sunny" },
      ],
      tools: [
        {
          type: "function",
          function: {
            name: "get_weather",
            parameters: { type: "object", properties: {}, additionalProperties: false },
            strict: true,
          },
        },
      ],
      tool_choice: {
        type: "allowed_tools",
        allowed_tools: { mode: "required", tools: [{ type: "function", function: { name: "get_weather" } }] },
      },
      parallel_tool_calls: false,
      logprobs: true,
      top_logprobs: 2,
      seed: 7,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      logit_bias: { "42": 1 },
      stop: ["END"],
      reasoning_effort: "low",
    });
    expect(env.upstream.requests[0]?.body).toMatchObject({
      parallel_tool_calls: false,
      tool_choice: { type: "allowed_tools" },
      logprobs: true,
      top_logprobs: 2,
    });
  });

  it("passes a JSON schema response format through and returns the structured answer", async () => {
    const completion = await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [{ role: "user", content: "The answer?" }],
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "answer",
          strict: true,
          schema: { type: "object", properties: { answer: { type: "number" } }, required: ["answer"] },
        },
      },
    });
    expect(JSON.parse(completion.choices[0]?.message.content ?? "")).toEqual({ answer: 42 });
    expect(env.upstream.requests[0]?.body.response_format).toMatchObject({
      type: "json_schema",
      json_schema: { name: "answer", strict: true },
    });
  });

  it("passes image URLs through to the upstream without fetching them", async () => {
    await env.gateway.client.chat.completions.create({
      model: "remote",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is this?" },
            { type: "image_url", image_url: { url: "http://169.254.169.254/latest/meta-data" } },
          ],
        },
      ],
    });
    expect(env.upstream.requests).toHaveLength(1);
    expect(env.upstream.requests[0]?.body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "What is this?" },
          { type: "image_url", image_url: { url: "http://169.254.169.254/latest/meta-data" } },
        ],
      },
    ]);
  });

  it("serves legacy completions", async () => {
    const completion = await env.gateway.client.completions.create({
      model: "remote",
      prompt: "Once",
      max_tokens: 5,
    });
    expect(completion.choices[0]?.text).toBe("Hello from upstream");
    expect(completion.choices[0]?.finish_reason).toBe("length");
    expect(env.upstream.requests[0]?.path).toBe("/v1/completions");
    expect(env.upstream.requests[0]?.body).toMatchObject({
      prompt: "Once",
      max_tokens: 5,
      model: "upstream-model",
    });
  });

  it("asks for max_completion_tokens where configured, but max_tokens on /completions, which has no other", async () => {
    await env.gateway.client.chat.completions.create({
      model: "remote-reasoning",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 5,
    });
    await env.gateway.client.completions.create({ model: "remote-reasoning", prompt: "Once", max_tokens: 5 });
    const [chat, completion] = env.upstream.requests.map((request) => request.body);
    expect(chat).toMatchObject({ max_completion_tokens: 5 });
    expect(chat).not.toHaveProperty("max_tokens");
    expect(completion).toMatchObject({ max_tokens: 5 });
    expect(completion).not.toHaveProperty("max_completion_tokens");
  });

  it("sends a legacy completion with a token prompt, logprobs and a seed in the spec's shape", async () => {
    await env.gateway.client.completions.create({
      model: "remote",
      prompt: [1, 2, 3],
      max_tokens: 5,
      logprobs: 2,
      seed: 7,
      stop: ["END"],
      presence_penalty: 0.5,
    });
    expect(env.upstream.requests[0]?.body).toMatchObject({ prompt: [1, 2, 3], logprobs: 2 });
  });

  it("creates embeddings through /v1/embeddings", async () => {
    const result = await env.gateway.client.embeddings.create({
      model: "remote",
      input: ["a", "b"],
      encoding_format: "float",
    });
    expect(result.data.map((d) => d.embedding)).toEqual([
      [0, 0.5, -0.25],
      [1, 0.5, -0.25],
    ]);
    expect(result.usage.prompt_tokens).toBe(6);
    expect(env.upstream.requests[0]?.body).toEqual({
      model: "upstream-model",
      input: ["a", "b"],
      encoding_format: "float",
    });
  });

  it("keeps an upstream 400 a 400 with the upstream's message", async () => {
    env.upstream.faults.push({
      status: 400,
      body: { error: { message: "messages too long for this model" } },
    });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "remote",
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(error.status).toBe(400);
    expect(error.message).toContain("messages too long for this model");
    expect(error.headers?.get("x-should-retry")).toBe("false");
  });

  it("turns an upstream 500 into a 502 that says a retry may help", async () => {
    env.upstream.faults.push({ status: 500 });
    const response = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }] }),
    });
    expect(response.status).toBe(502);
    expect(response.headers.get("x-should-retry")).toBe("true");
    const body = (await response.json()) as { error: { type: string; code: string } };
    expect(body.error).toMatchObject({ type: "server_error", code: "upstream_error" });
  });

  it("never shows the upstream key: an upstream that echoes it in a 401 becomes a generic 502", async () => {
    env.upstream.faults.push({
      status: 401,
      body: { error: { message: `Incorrect API key provided: ${SECRET}` } },
    });
    const response = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }] }),
    });
    const text = await response.text();
    expect(response.status).toBe(502);
    expect(text).not.toContain(SECRET);
    const ready = await (await fetch(`${env.gateway.url}/ready`)).text();
    const metrics = await (await fetch(`${env.gateway.url}/metrics`)).text();
    expect(ready + metrics + env.gateway.logs.join("")).not.toContain(SECRET);
  });

  it("ends a stream the upstream broke off with an error event and no [DONE]", async () => {
    env.upstream.faults.push({ disconnectAfter: 2 });
    const response = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const { events, done } = await readRawStream(response);
    expect(done).toBe(false);
    expect(JSON.parse(events.at(-1) ?? "{}")).toMatchObject({ error: { type: "server_error" } });
  });

  it("passes a slow stream through whole while each gap stays under the idle timeout", async () => {
    env.upstream.faults.push({ eventDelayMs: 300 });
    const response = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const { events, done } = await readRawStream(response);
    expect(done).toBe(true);
    const text = events
      .slice(0, -1)
      .map(
        (e) =>
          (JSON.parse(e) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "",
      )
      .join("");
    expect(text).toBe("Hello from upstream");
  });

  it("cuts off a stream that goes silent past idle_timeout_ms: an error event and no [DONE]", async () => {
    env.upstream.faults.push({ stallBeforeDone: true });
    const response = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }], stream: true }),
    });
    const { events, done } = await readRawStream(response);
    expect(done).toBe(false);
    expect(events.length).toBeGreaterThan(1);
    expect(JSON.parse(events.at(-1) ?? "{}")).toMatchObject({ error: { type: "server_error" } });
  });

  it("lets go of the upstream's answer when the client leaves mid-stream", async () => {
    env.upstream.faults.push({ eventDelayMs: 300 });
    const before = env.upstream.cutShort;
    const client = new AbortController();
    const response = await fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }], stream: true }),
      signal: client.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("data:");
    client.abort();
    await expect.poll(() => env.upstream.cutShort, { timeout: 5_000 }).toBe(before + 1);
  });

  it("makes no AbortSignal for a relayed request (chat streamed or not, embeddings): the client's leaving is a hook", async () => {
    const made = { count: 0 };
    const Original = globalThis.AbortController;
    globalThis.AbortController = class extends Original {
      constructor() {
        super();
        made.count++;
      }
    };
    const chat = (stream: boolean) => ({
      model: "remote",
      messages: [{ role: "user", content: "Hi" }],
      stream,
    });
    try {
      expect(await postPlain(`${env.gateway.url}/v1/chat/completions`, chat(false))).toContain(
        '"chat.completion"',
      );
      expect(await postPlain(`${env.gateway.url}/v1/chat/completions`, chat(true))).toContain("data: [DONE]");
      const embedded = await postPlain(`${env.gateway.url}/v1/embeddings`, { model: "remote", input: "a" });
      expect(JSON.parse(embedded)).toMatchObject({ object: "list", data: [{ object: "embedding" }] });
    } finally {
      globalThis.AbortController = Original;
    }
    expect(made.count).toBe(0);
  });

  it("lets go of an answer being gathered whole when the client leaves before it ends", async () => {
    env.upstream.faults.push({ hang: true });
    const before = { cut: env.upstream.cutShort, requests: env.upstream.requests.length };
    const client = new AbortController();
    const answered = fetch(`${env.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", messages: [{ role: "user", content: "Hi" }] }),
      signal: client.signal,
    }).catch((err: unknown) => err);
    await expect.poll(() => env.upstream.requests.length).toBe(before.requests + 1);
    client.abort();
    expect(await answered).toMatchObject({ name: "AbortError" });
    // Well before the attempt's 2 s timeout would have cut it.
    await expect.poll(() => env.upstream.cutShort, { timeout: 1_000 }).toBe(before.cut + 1);
  });

  it("refuses malformed upstream events with a 502, not a crash", async () => {
    env.upstream.faults.push({ malformed: true });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "remote",
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(error.status).toBe(502);
  });

  it("answers embeddings that are not JSON with a 502 upstream_protocol_error in our error envelope", async () => {
    env.upstream.faults.push({ malformed: true });
    const response = await fetch(`${env.gateway.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "remote", input: "a" }),
    });
    expect(response.status).toBe(502);
    expect(response.headers.get("x-should-retry")).toBe("true");
    const body = (await response.json()) as { error: Record<string, unknown> };
    expect(Object.keys(body)).toEqual(["error"]);
    expect(body.error).toMatchObject({
      type: "server_error",
      param: null,
      code: "upstream_protocol_error",
      message: "The upstream provider sent an answer that is not JSON.",
    });
  });

  it("answers 504 when the upstream hangs past the attempt's timeout", async () => {
    env.upstream.faults.push({ hang: true });
    const error = await failureOf(
      env.gateway.client.chat.completions.create({
        model: "remote",
        messages: [{ role: "user", content: "Hi" }],
      }),
    );
    expect(error.status).toBe(504);
  });
});
