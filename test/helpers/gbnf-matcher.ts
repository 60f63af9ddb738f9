import { getLlama, type Llama, type LlamaGrammar } from "node-llama-cpp";

/**
 * llama.cpp's own grammar engine as a matcher: node-llama-cpp parses a GBNF grammar with
 * llama.cpp's parser (which throws on a grammar it refuses, left recursion included) and its
 * internal `_testText` runs llama.cpp's grammar stacks over the text code point by code point —
 * true only when the whole text is a complete match. So a test checks the grammar the engine will
 * really enforce, not our idea of it.
 */

let shared: Promise<Llama> | undefined;

export function testLlama(): Promise<Llama> {
  shared ??= getLlama({ build: "never", gpu: false });
  return shared;
}

export interface GbnfMatcher {
  readonly grammar: LlamaGrammar;
  accepts(text: string): boolean;
}

type TestableGrammar = LlamaGrammar & { _testText?: (text: string) => boolean };

export async function gbnfMatcher(gbnf: string): Promise<GbnfMatcher> {
  const llama = await testLlama();
  const grammar = (await llama.createGrammar({ grammar: gbnf })) as TestableGrammar;
  const test = grammar._testText;
  if (typeof test !== "function") {
    throw new Error(
      "node-llama-cpp no longer has LlamaGrammar._testText; the grammar tests need a new matcher",
    );
  }
  return { grammar, accepts: (text) => test.call(grammar, text) };
}
