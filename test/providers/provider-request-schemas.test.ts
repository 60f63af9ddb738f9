import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { anthropicDeploymentSchema } from "../../src/config/routed-model-schema.js";
import { specAvailable } from "../helpers/openapi.js";
import { readSdkSchema, requestProblems, SDK_REQUEST_SCHEMAS } from "./helpers/upstream-request-schemas.js";

const ROOT = new URL("../../", import.meta.url);
const readJson = (path: string) => JSON.parse(readFileSync(new URL(path, ROOT), "utf8"));
const sha256 = (path: string) =>
  createHash("sha256")
    .update(readFileSync(new URL(path, ROOT)))
    .digest("hex");

describe("the request schemas the mock upstreams hold Switchboard to", () => {
  it("are generated from the SDK versions package.json pins and installed, and from the current types (else: npm run schemas:providers)", () => {
    const pinned = readJson("package.json").devDependencies as Record<string, string>;
    for (const file of Object.values(SDK_REQUEST_SCHEMAS)) {
      const from = readSdkSchema(file)["x-generated-from"];
      expect({ file, version: from.version, typesSha256: from.typesSha256 }).toEqual({
        file,
        version: readJson(`node_modules/${from.sdk}/package.json`).version,
        typesSha256: sha256(from.types),
      });
      expect(pinned[from.sdk], `${from.sdk} is pinned to the version ${file} was generated from`).toBe(
        from.version,
      );
    }
  });

  it("describe the Messages API version Switchboard sends by default: the one the Anthropic SDK sends", () => {
    // @anthropic-ai/sdk 1.x sends anthropic-version 2026-10-21, whose request has no temperature,
    // top_p or top_k: its types are not those of the version Switchboard speaks.
    const client = readFileSync(new URL("node_modules/@anthropic-ai/sdk/client.mjs", ROOT), "utf8");
    const sdkApiVersion = /'anthropic-version': '([^']+)'/.exec(client)?.[1];
    const deployment = anthropicDeploymentSchema.parse({ provider: "anthropic", model: "m" });
    expect(sdkApiVersion).toBe(deployment.api_version);
  });

  it("take a Messages API request, and name where one strays and how", () => {
    const body = {
      model: "claude-test",
      max_tokens: 100,
      stream: true,
      system: [{ type: "text", text: "Be brief." }],
      messages: [
        { role: "user", content: [{ type: "text", text: "Hi" }] },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "f", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "ok" }] },
      ],
      tools: [{ name: "f", input_schema: { type: "object", properties: {} } }],
      tool_choice: { type: "auto", disable_parallel_tool_use: true },
      thinking: { type: "enabled", budget_tokens: 1024 },
    };
    expect(requestProblems(body, "anthropic-messages")).toEqual([]);

    const stray = structuredClone(body);
    Object.assign(stray.messages[0]?.content[0] ?? {}, { cache: true });
    expect(requestProblems(stray, "anthropic-messages")).toEqual([
      "/messages/0/content/0: 'cache' is not a property the schema defines here",
    ]);
    expect(requestProblems({ ...body, max_tokens: "100" }, "anthropic-messages")).toEqual([
      "/max_tokens: must be number",
    ]);
    const { stream: _stream, ...unstreamed } = body;
    expect(requestProblems(unstreamed, "anthropic-messages")).toEqual([
      "(the body): must have required property 'stream'",
    ]);
  });

  it("take a Gemini generateContent and batchEmbedContents body, and name where one strays and how", () => {
    const body = {
      systemInstruction: { parts: [{ text: "Be brief." }] },
      contents: [
        { role: "user", parts: [{ text: "Hi" }, { inlineData: { mimeType: "image/png", data: "AAAA" } }] },
        { role: "model", parts: [{ functionCall: { name: "f", args: {} }, thoughtSignature: "AAAA" }] },
        { role: "user", parts: [{ functionResponse: { name: "f", response: { output: "ok" } } }] },
      ],
      tools: [{ functionDeclarations: [{ name: "f", parameters: { type: "OBJECT", properties: {} } }] }],
      toolConfig: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["f"] } },
      generationConfig: { temperature: 0.5, thinkingConfig: { thinkingBudget: 1024, includeThoughts: true } },
    };
    expect(requestProblems(body, "gemini-generate-content")).toEqual([]);
    expect(
      requestProblems({ ...body, generationConfig: { maxTokens: 5 } }, "gemini-generate-content"),
    ).toEqual(["/generationConfig: 'maxTokens' is not a property the schema defines here"]);
    expect(
      requestProblems(
        { ...body, toolConfig: { functionCallingConfig: { mode: "REQUIRED" } } },
        "gemini-generate-content",
      ),
    ).toEqual([expect.stringMatching(/^\/toolConfig\/functionCallingConfig\/mode: must be one of .*"ANY"/)]);

    const embed = {
      requests: [{ model: "models/m", content: { parts: [{ text: "a" }] }, outputDimensionality: 3 }],
    };
    expect(requestProblems(embed, "gemini-batch-embed-contents")).toEqual([]);
    expect(
      requestProblems(
        { requests: [{ model: "models/m", content: { parts: [] }, dimensions: 3 }] },
        "gemini-batch-embed-contents",
      ),
    ).toEqual(["/requests/0: 'dimensions' is not a property the schema defines here"]);
  });

  it.skipIf(!specAvailable && process.env.SWITCHBOARD_REQUIRE_SPEC !== "1")(
    "hold OpenAI-compatible requests to the spec, closed but for the sampling extensions Switchboard forwards",
    () => {
      const chat = {
        model: "m",
        stream: true,
        stream_options: { include_usage: true },
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: [{ type: "text", text: "Hi" }] },
        ],
        top_k: 20,
        min_p: 0.05,
        repetition_penalty: 1.1,
      };
      expect(requestProblems(chat, "CreateChatCompletionRequest")).toEqual([]);
      expect(requestProblems({ ...chat, mirostat: 2 }, "CreateChatCompletionRequest")).toEqual([
        "(the body): 'mirostat' is not a property the schema defines here",
      ]);
      const stray = structuredClone(chat);
      Object.assign(stray.messages[1] ?? {}, { tool_call_id: "call_1" });
      expect(requestProblems(stray, "CreateChatCompletionRequest")).toEqual([
        "/messages/1: 'tool_call_id' is not a property the schema defines here",
      ]);
      expect(
        requestProblems({ model: "m", prompt: "Once", max_completion_tokens: 5 }, "CreateCompletionRequest"),
      ).toEqual(["(the body): 'max_completion_tokens' is not a property the schema defines here"]);
      expect(
        requestProblems({ model: "m", input: ["a"], encoding_format: "float" }, "CreateEmbeddingRequest"),
      ).toEqual([]);
    },
  );
});
