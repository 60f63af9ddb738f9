import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineEvent, LocalEngine, TokenGeneration } from "../../src/backends/local/engine.js";
import { completionBody } from "../../src/backends/local/engines/llama-server/completion-request.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { ServiceError } from "../../src/core/errors.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * Engines take a GBNF grammar: llama-server applies it to every sampled token (so even a
 * random-weight model keeps to it), and the engines that cannot yet refuse it instead of
 * dropping it.
 */

const binary = await llamaServerForTests();
const YES_OR_NO = 'root ::= "yes" | "no"';

function engineOf(t: TestServer): LocalEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine;
}

async function generation(engine: LocalEngine, grammar: TokenGeneration["grammar"], seed: number) {
  const promptTokens = await engine.tokenize("Answer yes or no:", { special: false });
  const events: EngineEvent[] = [];
  const request: TokenGeneration = {
    promptTokens,
    maxTokens: 8,
    sampling: { temperature: 1, topP: 1, seed, presencePenalty: 0, frequencyPenalty: 0 },
    grammar,
  };
  for await (const event of engine.generate(request, new AbortController().signal)) events.push(event);
  let text = "";
  for (const event of events) if (event.type === "token") text += event.text;
  return { text, end: events.at(-1) };
}

describe.skipIf(binary === undefined)("a grammar on the llama-server engine", () => {
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

  it("holds every generation to the grammar, even on random weights", async () => {
    const engine = engineOf(t);
    expect(engine.grammars).toBe(true);
    for (let seed = 1; seed <= 6; seed++) {
      const { text, end } = await generation(engine, { gbnf: YES_OR_NO }, seed);
      expect(["yes", "no"]).toContain(text);
      expect(end).toEqual({ type: "end", reason: "stop" });
    }
  });

  it("sends a lazy grammar with its triggers, trigger words preserved", () => {
    const body = completionBody(
      {
        promptTokens: [1, 2],
        maxTokens: 4,
        sampling: { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0 },
        grammar: { gbnf: YES_OR_NO, lazy: { words: ["<tool_call>"], patterns: ['\\{\\s*"name"'] } },
      },
      0,
      512,
    );
    expect(body).toMatchObject({
      grammar: YES_OR_NO,
      grammar_lazy: true,
      grammar_triggers: [
        { type: 1, value: "<tool_call>" },
        { type: 2, value: '\\{\\s*"name"' },
      ],
      preserved_tokens: ["<tool_call>"],
    });
  });
});

describe.each(["in-process", "runner"])("a grammar on the %s engine", (engineName) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ model: { engine: engineName } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("is refused, not dropped", async () => {
    const engine = engineOf(t);
    expect(engine.grammars).toBe(false);
    const err = await generation(engine, { gbnf: YES_OR_NO }, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).code).toBe("unsupported_grammar");
    // The engine still serves plain generations.
    const plain = await generation(engine, undefined, 1);
    expect(plain.end?.type).toBe("end");
  });
});
