import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, Output, streamText, tool } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/**
 * The AI SDK's OpenAI provider, which speaks the Responses API by default: generateText and
 * streamText against a listening server, as an app built on it would call us.
 */
describe("the AI SDK's OpenAI provider (Responses API)", () => {
  let t: TestServer;
  let openai: ReturnType<typeof createOpenAI>;
  beforeAll(async () => {
    t = await startTestServer({ model: { context_size: 2048 } });
    openai = createOpenAI({ baseURL: `${t.url}/v1`, apiKey: "test-key" });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("generateText returns the text and usage", async () => {
    const result = await generateText({
      model: openai(TINY_MODEL),
      prompt: "Say hello.",
      maxOutputTokens: 16,
    });
    expect(typeof result.text).toBe("string");
    expect(result.text.length).toBeGreaterThan(0);
    expect(result.usage.inputTokens).toBeGreaterThan(0);
    expect(result.usage.outputTokens).toBeGreaterThan(0);
    expect(result.response.id).toMatch(/^resp_/);
  });

  it("streamText streams the same kind of text, chunk by chunk", async () => {
    const result = streamText({ model: openai(TINY_MODEL), prompt: "Count.", maxOutputTokens: 16 });
    const chunks: string[] = [];
    for await (const chunk of result.textStream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join("")).toBe(await result.text);
    expect(["stop", "length"]).toContain(await result.finishReason);
  });

  it("a tool call comes back with arguments the schema accepts", async () => {
    const result = await generateText({
      model: openai(TINY_MODEL),
      prompt: "What time is it in Oslo?",
      maxOutputTokens: 400,
      toolChoice: "required",
      providerOptions: { openai: { parallelToolCalls: false } },
      tools: {
        get_time: tool({
          description: "The time in a zone",
          inputSchema: jsonSchema<{ zone: "UTC" | "CET" }>({
            type: "object",
            properties: { zone: { type: "string", enum: ["UTC", "CET"] } },
            required: ["zone"],
            additionalProperties: false,
          }),
        }),
      },
    });
    expect(result.toolCalls).toHaveLength(1);
    expect(result.toolCalls[0]?.toolName).toBe("get_time");
    const input = result.toolCalls[0]?.input as { zone: string } | undefined;
    expect(["UTC", "CET"]).toContain(input?.zone);
  });

  it("structured output parses into the schema's shape", async () => {
    const result = await generateText({
      model: openai(TINY_MODEL),
      prompt: "Judge it.",
      maxOutputTokens: 200,
      output: Output.object({
        schema: jsonSchema<{ verdict: "yes" | "no" }>({
          type: "object",
          properties: { verdict: { type: "string", enum: ["yes", "no"] } },
          required: ["verdict"],
          additionalProperties: false,
        }),
      }),
    });
    expect(["yes", "no"]).toContain(result.output.verdict);
  });
});
