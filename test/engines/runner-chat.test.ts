import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnerEngine } from "../../src/backends/local/engines/runner/runner-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { chatConformance } from "./chat-conformance.js";

/**
 * The chat conformance behaviour, on the runner engine (node-llama-cpp in a child process): what
 * a client sees must not depend on the engine. A representative subset of test/api
 * (SWITCHBOARD_TEST_ENGINE=runner runs all of it on this engine).
 */
const hello = [{ role: "user" as const, content: "Hello there" }];

function engineOf(t: TestServer): RunnerEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as RunnerEngine;
}

describe("chat completions on the runner engine", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ model: { engine: "runner" } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function chat(params: Partial<ChatCompletionCreateParamsNonStreaming> = {}): Promise<ChatCompletion> {
    const completion = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 12,
      ...params,
    });
    expectMatchesSchema(completion, "CreateChatCompletionResponse");
    return completion;
  }

  async function stream(params: Record<string, unknown> = {}): Promise<ChatCompletionChunk[]> {
    const s = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 10,
      ...params,
      stream: true,
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of s) {
      expectMatchesSchema(chunk, "CreateChatCompletionStreamResponse");
      chunks.push(chunk);
    }
    return chunks;
  }

  const text = (c: ChatCompletion, i = 0) => c.choices[i]?.message.content ?? "";
  const streamed = (chunks: ChatCompletionChunk[], i = 0) =>
    chunks.flatMap((c) => c.choices.filter((x) => x.index === i).map((x) => x.delta.content ?? "")).join("");

  it("runs the model in a runner process and says so in /ready", async () => {
    const ready = (await (await fetch(`${t.url}/ready`)).json()) as {
      status: string;
      models: { id: string; ready: boolean; engine?: { engine: string; state: string; pid?: number } }[];
    };
    expect(ready.status).toBe("ready");
    const model = ready.models.find((m) => m.id === TINY_MODEL);
    expect(model?.ready).toBe(true);
    expect(model?.engine).toMatchObject({ engine: "runner", state: "ready" });
    expect(model?.engine?.pid).toBeGreaterThan(0);
    expect(model?.engine?.pid).not.toBe(process.pid);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain(
      `switchboard_engine_state{model="${TINY_MODEL}",engine="runner",state="ready"} 1`,
    );
    expect(metrics).toMatch(/switchboard_engine_resident_memory_bytes\{model="tiny",engine="runner"\} \d+/);
  });

  chatConformance(() => t, {
    engine: "runner",
    engineIdle: async (server) => {
      const engine = engineOf(server);
      const status = await engine.runnerStatus();
      return { idle: status.running === 0 && engine.stats().busySlots === 0, detail: status };
    },
  });

  it("tokenizes prompts and generates exactly like the in-process engine", async () => {
    const inProcess = await startTestServer({ model: { engine: "in-process" } });
    try {
      const messages = [
        { role: "system" as const, content: "Be brief.\nReally." },
        { role: "user" as const, content: "  Hello there, <|im_start|> not special  " },
        { role: "assistant" as const, content: "Hi!" },
        { role: "user" as const, content: "\nOnce more: ünïcödé 中文 🙂" },
      ];
      const params = { messages, max_tokens: 12, seed: 5, temperature: 1 };
      const a = await chat(params);
      const b = await inProcess.client.chat.completions.create({ model: TINY_MODEL, ...params });
      expect(a.usage?.prompt_tokens).toBe(b.usage?.prompt_tokens);
      // Same code under the same seed: the same text, token for token.
      expect(text(a)).toBe(b.choices[0]?.message.content ?? "");
    } finally {
      await inProcess.stop();
    }
  });
});
