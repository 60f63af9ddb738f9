import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LlamaServerEngine } from "../../src/backends/local/engines/llama-server/llama-server-engine.js";
import type { RunnerEngine } from "../../src/backends/local/engines/runner/runner-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { makeModel } from "../../src/models/make-model.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { chatConformance, chatHelpers, type EngineUnderTest, text } from "./chat-conformance.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * The chat conformance behaviour on each engine that runs the model in a process of its own:
 * what a client sees must not depend on the engine. Cases that only one engine has say so in
 * their names.
 */
const binary = await llamaServerForTests();
const hello = [{ role: "user" as const, content: "Hello there" }];

interface ChatEngine extends EngineUnderTest {
  /** Whether this machine can run it (llama-server needs a binary). */
  available: boolean;
  /** The server configuration the engine needs. */
  config: Record<string, unknown>;
}

function engineOf<E>(t: TestServer): E {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as E;
}

const llamaServer: ChatEngine = {
  engine: "llama-server",
  available: binary !== undefined,
  config: { engines: { llama_server: { binary } } },
  engineIdle: async (server) => {
    const engine = engineOf<LlamaServerEngine>(server);
    const slots = await engine.slotsInfo();
    return {
      idle: slots.every((slot) => !slot.is_processing) && engine.stats().busySlots === 0,
      detail: slots,
    };
  },
};

const runner: ChatEngine = {
  engine: "runner",
  available: true,
  config: {},
  engineIdle: async (server) => {
    const engine = engineOf<RunnerEngine>(server);
    const status = await engine.runnerStatus();
    return { idle: status.running === 0 && engine.stats().busySlots === 0, detail: status };
  },
};

/** A server on `target` for the describe block it is called in. */
function serverOn(target: ChatEngine): () => TestServer {
  let t: TestServer | undefined;
  beforeAll(async () => {
    t = await startTestServer({ config: target.config, model: { engine: target.engine } });
  });
  afterAll(async () => {
    await t?.stop();
  });
  return () => t as TestServer;
}

/** A second server on the in-process engine, to compare with. */
async function withInProcess<T>(use: (inProcess: TestServer) => Promise<T>): Promise<T> {
  const inProcess = await startTestServer({ model: { engine: "in-process" } });
  try {
    return await use(inProcess);
  } finally {
    await inProcess.stop();
  }
}

/** A conversation with whitespace, newlines, special-token text and multi-byte characters. */
const trickyMessages = [
  { role: "system" as const, content: "Be brief.\nReally." },
  { role: "user" as const, content: "  Hello there, <|im_start|> not special  " },
  { role: "assistant" as const, content: "Hi!" },
  { role: "user" as const, content: "\nOnce more: ünïcödé 中文 🙂" },
];

for (const target of [llamaServer, runner]) {
  describe.skipIf(!target.available)(`chat completions on the ${target.engine} engine`, () => {
    const t = serverOn(target);
    const { chat } = chatHelpers(t);

    it(`runs the model in a ${target.engine} process and says so in /ready and /metrics`, async () => {
      const ready = (await (await fetch(`${t().url}/ready`)).json()) as {
        status: string;
        models: {
          id: string;
          ready: boolean;
          engine?: {
            engine: string;
            state: string;
            pid?: number;
            choice?: { reason: string; binary?: { origin: string; revision?: string; path?: string } };
          };
        }[];
      };
      expect(ready.status).toBe("ready");
      const model = ready.models.find((m) => m.id === TINY_MODEL);
      expect(model?.ready).toBe(true);
      expect(model?.engine).toMatchObject({ engine: target.engine, state: "ready" });
      expect(model?.engine?.pid).toBeGreaterThan(0);
      expect(model?.engine?.pid).not.toBe(process.pid);
      // Why this engine, and for llama-server which binary (its path only on the admin API).
      expect(model?.engine?.choice?.reason).toBe("configured");
      if (target === llamaServer) {
        expect(model?.engine?.choice?.binary?.origin).toBe("config");
        expect(model?.engine?.choice?.binary?.revision).toMatch(/^[0-9a-f]{7,40}$/);
        expect(model?.engine?.choice?.binary?.path).toBeUndefined();
      }
      const metrics = await (await fetch(`${t().url}/metrics`)).text();
      expect(metrics).toContain(
        `switchboard_engine_state{model="${TINY_MODEL}",engine="${target.engine}",state="ready"} 1`,
      );
      expect(metrics).toMatch(
        new RegExp(
          `switchboard_engine_resident_memory_bytes\\{model="tiny",engine="${target.engine}"\\} \\d+`,
        ),
      );
    });

    chatConformance(t, target);

    it("tokenizes prompts exactly like the in-process engine", async () => {
      const a = await chat({ messages: trickyMessages, max_tokens: 1 });
      const b = await withInProcess((inProcess) =>
        inProcess.client.chat.completions.create({
          model: TINY_MODEL,
          messages: trickyMessages,
          max_tokens: 1,
        }),
      );
      expect(a.usage?.prompt_tokens).toBe(b.usage?.prompt_tokens);
    });

    // Runner only: it runs the in-process engine's own code.
    it.runIf(target === runner)("runner only: generates exactly like the in-process engine", async () => {
      const params = { messages: trickyMessages, max_tokens: 12, seed: 5, temperature: 1 };
      const a = await chat(params);
      const b = await withInProcess((inProcess) =>
        inProcess.client.chat.completions.create({ model: TINY_MODEL, ...params }),
      );
      // Same code under the same seed: the same text, token for token.
      expect(text(a)).toBe(b.choices[0]?.message.content ?? "");
    });
  });
}

// Cases only one engine has.

describe.skipIf(!binary)("llama-server only: quantized models", () => {
  // A Q8_0 model crashed a -march=native build on AMX CPUs (ggml's AMX kernels): engine build
  // leaves AMX out, and this keeps it that way.
  it("serves a Q8_0 model", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "sb-q8-")), "tiny-q8_0.gguf");
    await makeModel({ preset: "tiny", out: path, weightType: "q8_0", seed: 7 });
    const t = await startTestServer({
      config: llamaServer.config,
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
