import type OpenAI from "openai";
import { describe, expect, it } from "vitest";
import {
  idWithThoughtSignature,
  SIGNATURE_VALIDATOR_SKIP,
  thoughtSignatureOf,
} from "../../src/backends/providers/gemini/thought-signature.js";
import { MOCK_THOUGHT_SIGNATURE, startMockGeminiUpstream } from "./helpers/mock-gemini-upstream.js";
import { useMockProviderGateway } from "./helpers/mock-provider-gateway.js";

const parameters = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
  additionalProperties: false,
};
const chatTool = {
  type: "function" as const,
  function: { name: "get_weather", description: "Weather for a city", parameters },
};

describe("Gemini thought signatures in tool-call ids", () => {
  it("carry any signature exactly, in an id every provider accepts", () => {
    const signatures = [
      MOCK_THOUGHT_SIGNATURE,
      "AAAA",
      "+/8=",
      "+/+/+w==",
      "not base64: ü & spaces",
      Buffer.alloc(3000, 0xfb).toString("base64"),
    ];
    for (const signature of signatures) {
      const id = idWithThoughtSignature("call_Abc123", signature);
      expect(id).toMatch(/^call_Abc123_tsu?_[A-Za-z0-9_-]+$/);
      expect(thoughtSignatureOf(id)).toBe(signature);
    }
    // Ids minted elsewhere carry none.
    for (const id of ["call_Abc123", "toolu_01A09q90qw90lq917835lq9", "call_x_tsx_y", "fc_1"]) {
      expect(thoughtSignatureOf(id)).toBeUndefined();
    }
  });
});

describe("multi-turn function calling with a Gemini 3 upstream", () => {
  const env = useMockProviderGateway({
    start: startMockGeminiUpstream,
    models: (url) => [
      {
        id: "gemini",
        deployments: [
          {
            provider: "gemini",
            base_url: `${url}/v1beta`,
            model: "gemini-3-test",
            max_retries: 0,
          },
        ],
      },
    ],
  });

  const modelTurn = (n: number) =>
    (
      (env.upstream.requests[n]?.body.contents ?? []) as { role: string; parts: Record<string, unknown>[] }[]
    ).find((c) => c.role === "model");

  it("gives each call's signature back on the part it came with when the client sends the calls back", async () => {
    const first = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [{ role: "user", content: "Weather in Paris and Lyon?" }],
      tools: [chatTool],
    });
    const calls = (first.choices[0]?.message.tool_calls ??
      []) as OpenAI.ChatCompletionMessageFunctionToolCall[];
    expect(calls).toHaveLength(2);

    const second = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [
        { role: "user", content: "Weather in Paris and Lyon?" },
        { role: "assistant", content: null, tool_calls: calls },
        ...calls.map((call) => ({ role: "tool" as const, tool_call_id: call.id, content: "sunny" })),
      ],
      tools: [chatTool],
    });
    // The upstream refuses a current-turn call without its signature; it answered.
    expect(second.choices[0]?.message.content).toBe("Hello from Gemini");
    expect(modelTurn(1)?.parts).toEqual([
      {
        functionCall: { name: "get_weather", args: { city: "Paris" } },
        thoughtSignature: MOCK_THOUGHT_SIGNATURE,
      },
      // Gemini signs only the first of parallel calls; the second goes back as it came.
      { functionCall: { name: "get_weather", args: { city: "Lyon" } } },
    ]);
  });

  it("gives calls Gemini never made (another model's) Google's stand-in signature instead of failing the turn", async () => {
    const answer = await env.gateway.client.chat.completions.create({
      model: "gemini",
      messages: [
        { role: "user", content: "Weather in Paris and Lyon?" },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "call_fromAnotherModel1",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Paris"}' },
            },
            {
              id: "call_fromAnotherModel2",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Lyon"}' },
            },
          ],
        },
        { role: "tool", tool_call_id: "call_fromAnotherModel1", content: "sunny" },
        { role: "tool", tool_call_id: "call_fromAnotherModel2", content: "rain" },
      ],
      tools: [chatTool],
    });
    expect(answer.choices[0]?.message.content).toBe("Hello from Gemini");
    expect(modelTurn(0)?.parts.map((p) => p.thoughtSignature)).toEqual([SIGNATURE_VALIDATOR_SKIP, undefined]);
  });

  it("carries the signature through the Responses API's call_id too", async () => {
    const tools = [{ type: "function" as const, name: "get_weather", parameters, strict: true }];
    const first = await env.gateway.client.responses.create({
      model: "gemini",
      input: "Weather in Paris and Lyon?",
      tools,
      store: false,
    });
    const calls = first.output.filter((item) => item.type === "function_call");
    expect(calls).toHaveLength(2);
    const second = await env.gateway.client.responses.create({
      model: "gemini",
      input: [
        { role: "user", content: "Weather in Paris and Lyon?" },
        ...calls.map(({ call_id, name, arguments: args }) => ({
          type: "function_call" as const,
          call_id,
          name,
          arguments: args,
        })),
        ...calls.map((call) => ({
          type: "function_call_output" as const,
          call_id: call.call_id,
          output: "sunny",
        })),
      ],
      tools,
      store: false,
    });
    expect(second.output_text).toBe("Hello from Gemini");
    expect(modelTurn(1)?.parts[0]?.thoughtSignature).toBe(MOCK_THOUGHT_SIGNATURE);
  });
});
