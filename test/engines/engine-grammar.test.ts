import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineEvent, LocalEngine, TokenGeneration } from "../../src/backends/local/engine.js";
import { completionBody } from "../../src/backends/local/engines/llama-server/completion-request.js";
import type { LlamaServerEngine } from "../../src/backends/local/engines/llama-server/llama-server-engine.js";
import type { RunnerEngine } from "../../src/backends/local/engines/runner/runner-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { ServiceError } from "../../src/core/errors.js";
import { compileJsonSchema, JSON_OBJECT_GBNF } from "../../src/grammar/json-schema-gbnf.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";
import { schemaValidator } from "../helpers/json-schema-validator.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * Every engine takes a GBNF grammar and applies it to every sampled token, so even a
 * random-weight model keeps to it: eagerly from the first token, or lazily from a trigger on. The
 * same cases run on each engine; what a client sees must not depend on which one runs the model.
 */

const binary = await llamaServerForTests();
const YES_OR_NO = 'root ::= "yes" | "no"';
const ANSWERS = 'root ::= answer ("," " "? answer){0,4}\nanswer ::= "yes" | "no" | "maybe"';

interface GrammarEngine {
  name: string;
  available: boolean;
  config: Record<string, unknown>;
  /** Whether the engine has no generation left running (its process included). */
  idle(engine: LocalEngine): Promise<boolean>;
}

const engines: GrammarEngine[] = [
  {
    name: "in-process",
    available: true,
    config: {},
    idle: async (engine) => engine.stats().busySlots === 0,
  },
  {
    name: "runner",
    available: true,
    config: {},
    idle: async (engine) =>
      engine.stats().busySlots === 0 && (await (engine as RunnerEngine).runnerStatus()).running === 0,
  },
  {
    name: "llama-server",
    available: binary !== undefined,
    config: { engines: { llama_server: { binary } } },
    idle: async (engine) =>
      engine.stats().busySlots === 0 &&
      (await (engine as LlamaServerEngine).slotsInfo()).every((slot) => !slot.is_processing),
  },
];

function engineOf(t: TestServer): LocalEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine;
}

interface Generated {
  events: EngineEvent[];
  tokens: Extract<EngineEvent, { type: "token" }>[];
  text: string;
  end: EngineEvent | undefined;
}

async function generate(
  engine: LocalEngine,
  options: Partial<TokenGeneration> & { seed: number },
  signal = new AbortController().signal,
): Promise<Generated> {
  const { seed, ...rest } = options;
  const promptTokens = await engine.tokenize("Answer yes or no:", { special: false });
  const request: TokenGeneration = {
    promptTokens,
    maxTokens: 8,
    sampling: { temperature: 1, topP: 1, seed, presencePenalty: 0, frequencyPenalty: 0 },
    ...rest,
  };
  const events: EngineEvent[] = [];
  for await (const event of engine.generate(request, signal)) events.push(event);
  const tokens = events.filter((e): e is Extract<EngineEvent, { type: "token" }> => e.type === "token");
  return { events, tokens, text: tokens.map((e) => e.text).join(""), end: events.at(-1) };
}

/** A GBNF string literal spelling `text` (printable ASCII without quotes or backslashes). */
const literal = (text: string) => `"${text}"`;
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");

for (const target of engines) {
  describe.skipIf(!target.available)(`a grammar on the ${target.name} engine`, () => {
    let t: TestServer;
    beforeAll(async () => {
      t = await startTestServer({ config: target.config, model: { engine: target.name } });
    });
    afterAll(async () => {
      await t?.stop();
    });

    it("holds every generation to the grammar at temperature 1, even on random weights", async () => {
      const engine = engineOf(t);
      expect(engine.grammars).toBe(true);
      const answers = await gbnfMatcher(ANSWERS);
      for (let seed = 1; seed <= 6; seed++) {
        const yesNo = await generate(engine, { seed, grammar: { gbnf: YES_OR_NO } });
        expect(["yes", "no"]).toContain(yesNo.text);
        expect(yesNo.end).toEqual({ type: "end", reason: "stop" });
        const list = await generate(engine, { seed, maxTokens: 64, grammar: { gbnf: ANSWERS } });
        expect(list.end).toEqual({ type: "end", reason: "stop" });
        expect(answers.accepts(list.text), list.text).toBe(true);
      }
    });

    it("holds with log probabilities, which stay the model's own", async () => {
      const engine = engineOf(t);
      const answers = await gbnfMatcher(ANSWERS);
      let refusedAlternatives = 0;
      for (let seed = 1; seed <= 4; seed++) {
        const { text, tokens, end } = await generate(engine, {
          seed,
          maxTokens: 64,
          topLogprobs: 3,
          grammar: { gbnf: ANSWERS },
        });
        expect(end).toEqual({ type: "end", reason: "stop" });
        expect(answers.accepts(text), text).toBe(true);
        for (const token of tokens.filter((e) => e.token >= 0)) {
          expect(token.logprob).toBeLessThanOrEqual(0);
          expect(token.top).toHaveLength(3);
          const top = token.top ?? [];
          // The most likely alternative is the model's favourite, which the chosen token cannot beat.
          expect(token.logprob as number).toBeLessThanOrEqual((top[0]?.logprob as number) + 1e-6);
          refusedAlternatives += top.filter((c) => !/^[yesnomaybe, ]*$/.test(c.text)).length;
        }
      }
      // A random model's favourites are mostly text the grammar refuses: reported all the same.
      expect(refusedAlternatives).toBeGreaterThan(0);
    });

    it("writes JSON that a JSON Schema grammar describes", async () => {
      const engine = engineOf(t);
      const schema = {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 6 },
          kind: { enum: ["tool", "person", "place"] },
          tags: {
            type: "array",
            maxItems: 3,
            items: {
              type: "object",
              properties: { id: { type: "integer", minimum: 0, maximum: 99 }, on: { type: "boolean" } },
              required: ["id", "on"],
            },
          },
        },
        required: ["name", "kind", "tags"],
      };
      const { gbnf } = compileJsonSchema(schema, { strict: true });
      const valid = schemaValidator(schema);
      const runs: Partial<TokenGeneration>[] = [{}, {}, {}, { topLogprobs: 1 }];
      for (const [i, run] of runs.entries()) {
        const { text, end } = await generate(engine, {
          seed: 11 + i,
          maxTokens: 400,
          grammar: { gbnf },
          ...run,
        });
        expect(end, text).toEqual({ type: "end", reason: "stop" });
        expect(valid(JSON.parse(text)), text).toBe(true);
      }
      const object = await generate(engine, { seed: 3, maxTokens: 400, grammar: { gbnf: JSON_OBJECT_GBNF } });
      if (object.end?.type === "end" && object.end.reason === "stop") {
        expect(typeof JSON.parse(object.text)).toBe("object");
      } else {
        // Out of tokens inside a long string: still the start of an object.
        expect(object.text.startsWith("{")).toBe(true);
      }
    });

    it("leaves text free before a lazy grammar's trigger and holds what follows to the grammar", async () => {
      const engine = engineOf(t);
      for (const seed of [1, 2, 3]) {
        for (const logprobs of [false, true]) {
          const extra: Partial<TokenGeneration> = logprobs ? { topLogprobs: 1 } : {};
          const free = await generate(engine, { seed, maxTokens: 24, ...extra });
          // The trigger: two whole tokens of what the free run wrote at this seed, after a free start.
          const word = await triggerIn(
            engine,
            free.tokens.map((e) => e.text),
          );
          expect(word, free.text).toBeDefined();
          const { text: trigger, at } = word as { text: string; at: number };
          const gbnf = `root ::= ${literal(trigger)} " = " [0-9] [0-9]`;
          const matcher = await gbnfMatcher(gbnf);
          const triggers = [
            { words: [trigger], patterns: [] },
            { words: [], patterns: [`(${escapeRegExp(trigger)})`] },
          ];
          for (const lazy of triggers) {
            const lazyRun = await generate(engine, {
              seed,
              maxTokens: 64,
              grammar: { gbnf, lazy },
              ...extra,
            });
            // The same free text up to the trigger, as the same seed samples it without a grammar
            // (text the grammar, which begins with the trigger, would not have allowed), then the
            // grammar's language from the trigger on.
            expect(lazyRun.text.slice(0, at), lazyRun.text).toBe(free.text.slice(0, at));
            expect(at).toBeGreaterThan(0);
            expect(matcher.accepts(lazyRun.text.slice(at)), lazyRun.text).toBe(true);
            expect(lazyRun.end).toEqual({ type: "end", reason: "stop" });
          }
        }
      }
    });

    it("refuses a grammar it cannot run with a 400, and goes on serving", async () => {
      const engine = engineOf(t);
      const refused = [
        { gbnf: "root ::= undefined-rule" },
        { gbnf: 'root ::= root "a"' },
        // Nesting this deep overflows llama.cpp's parser: refused before it is parsed.
        { gbnf: `root ::= ${"(".repeat(20_000)}"a"${")".repeat(20_000)}` },
        { gbnf: YES_OR_NO, lazy: { words: [], patterns: ["(unclosed"] } },
        { gbnf: YES_OR_NO, lazy: { words: [], patterns: [] } },
      ];
      for (const grammar of refused) {
        const err = await generate(engine, { seed: 1, grammar }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ServiceError);
        expect((err as ServiceError).status).toBe(400);
        expect((err as ServiceError).code).toBe("invalid_grammar");
      }
      const after = await generate(engine, { seed: 1, grammar: { gbnf: YES_OR_NO } });
      expect(["yes", "no"]).toContain(after.text);
      expect(await target.idle(engine)).toBe(true);
    });

    it("frees the slot when a constrained generation is aborted", async () => {
      const engine = engineOf(t);
      const controller = new AbortController();
      const promptTokens = await engine.tokenize("Count:", { special: false });
      const request: TokenGeneration = {
        promptTokens,
        maxTokens: 400,
        sampling: { temperature: 1, topP: 1, seed: 5, presencePenalty: 0, frequencyPenalty: 0 },
        grammar: { gbnf: "root ::= [a-z]{400}" },
      };
      let seen = 0;
      for await (const event of engine.generate(request, controller.signal)) {
        if (event.type === "token" && ++seen === 3) controller.abort();
      }
      expect(seen).toBeLessThan(400);
      await waitFor("the engine to be idle", () => target.idle(engine));
      const next = await generate(engine, { seed: 2, grammar: { gbnf: YES_OR_NO } });
      expect(["yes", "no"]).toContain(next.text);
    });
  });
}

/**
 * Two consecutive whole tokens of printable text, after at least two tokens, whose first
 * occurrence in the text is where they stand: a lazy grammar's trigger that fires on that token.
 * Not a word the tokenizer spells as one token: llama-server watches for such a word as that
 * token only, and the free run spelled it with two.
 */
async function triggerIn(
  engine: LocalEngine,
  pieces: string[],
): Promise<{ text: string; at: number } | undefined> {
  const text = pieces.join("");
  let at = 0;
  for (let i = 0; i + 1 < pieces.length; i++) {
    const candidate = `${pieces[i]}${pieces[i + 1]}`;
    if (
      i >= 2 &&
      /^[A-Za-z0-9 ,.!?:;]{2,}$/.test(candidate) &&
      text.indexOf(candidate) === at &&
      (await engine.tokenize(candidate, { special: true })).length > 1
    )
      return { text: candidate, at };
    at += (pieces[i] as string).length;
  }
  return undefined;
}

describe("a lazy grammar sent to llama-server", () => {
  it("names its triggers, trigger words preserved", () => {
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
