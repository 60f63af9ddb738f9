import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
} from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LlamaServerEngine } from "../../src/backends/local/engines/llama-server/llama-server-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { makeModel } from "../../src/models/make-model.js";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { chatConformance } from "./chat-conformance.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * The chat conformance behaviour, on the llama-server engine: what a client sees must not depend
 * on the engine. A representative subset of test/api (SWITCHBOARD_TEST_ENGINE=llama-server runs
 * all of it on this engine).
 */
const binary = await llamaServerForTests();
const hello = [{ role: "user" as const, content: "Hello there" }];

export function engineOf(t: TestServer): LlamaServerEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as LlamaServerEngine;
}

describe.skipIf(!binary)("chat completions on the llama-server engine", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({
      config: { engines: { llama_server: { binary } } },
      model: { engine: "llama-server" },
    });
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

  it("runs the model on llama-server and says so in /ready", async () => {
    const ready = (await (await fetch(`${t.url}/ready`)).json()) as {
      status: string;
      models: { id: string; ready: boolean; engine?: { engine: string; state: string; pid?: number } }[];
    };
    expect(ready.status).toBe("ready");
    const model = ready.models.find((m) => m.id === TINY_MODEL);
    expect(model?.ready).toBe(true);
    expect(model?.engine).toMatchObject({ engine: "llama-server", state: "ready" });
    expect(model?.engine?.pid).toBeGreaterThan(0);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain(
      `switchboard_engine_state{model="${TINY_MODEL}",engine="llama-server",state="ready"} 1`,
    );
    expect(metrics).toMatch(
      /switchboard_engine_resident_memory_bytes\{model="tiny",engine="llama-server"\} \d+/,
    );
  });

  chatConformance(() => t, {
    engine: "llama-server",
    engineIdle: async (server) => {
      const engine = engineOf(server);
      const slots = await engine.slotsInfo();
      return {
        idle: slots.every((slot) => !slot.is_processing) && engine.stats().busySlots === 0,
        detail: slots,
      };
    },
  });

  it("tokenizes prompts exactly like the in-process engine", async () => {
    const inProcess = await startTestServer({ model: { engine: "in-process" } });
    try {
      const messages = [
        { role: "system" as const, content: "Be brief.\nReally." },
        { role: "user" as const, content: "  Hello there, <|im_start|> not special  " },
        { role: "assistant" as const, content: "Hi!" },
        { role: "user" as const, content: "\nOnce more: ünïcödé 中文 🙂" },
      ];
      const a = await chat({ messages, max_tokens: 1 });
      const b = await inProcess.client.chat.completions.create({
        model: TINY_MODEL,
        messages,
        max_tokens: 1,
      });
      expect(a.usage?.prompt_tokens).toBe(b.usage?.prompt_tokens);
    } finally {
      await inProcess.stop();
    }
  });
});

describe.skipIf(!binary)("quantized models on the llama-server engine", () => {
  // A Q8_0 model crashed a -march=native build on AMX CPUs (ggml's AMX kernels): engine build
  // leaves AMX out, and this keeps it that way.
  it("serves a Q8_0 model", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "sb-q8-")), "tiny-q8_0.gguf");
    await makeModel({ preset: "tiny", out: path, weightType: "q8_0", seed: 7 });
    const t = await startTestServer({
      config: { engines: { llama_server: { binary } } },
      model: { engine: "llama-server", source: path },
    });
    try {
      const completion = await t.client.chat.completions.create({
        model: TINY_MODEL,
        messages: hello,
        max_tokens: 8,
      });
      expect(completion.usage?.completion_tokens).toBe(8);
    } finally {
      await t.stop();
    }
  });
});
