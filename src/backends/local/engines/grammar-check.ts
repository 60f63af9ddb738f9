import type { Llama, LlamaGrammar } from "node-llama-cpp";
import { invalidRequest, type ServiceError } from "../../../core/errors.js";
import type { EngineGrammar } from "../engine.js";

/**
 * Bounds on a GBNF text before llama.cpp's parser sees it. The parser and the grammar's stack
 * walk recurse once per nested group and once per rule in a chain of leftmost references; far
 * past these bounds (tens of thousands) they overflow the native stack and take the process
 * down. Grammars compiled from JSON Schemas stay well inside them.
 */
export const GRAMMAR_LIMITS = { maxChars: 1024 * 1024, maxRules: 20_000, maxNesting: 1_000 };

const CACHE_ENTRIES = 64;

/**
 * A grammar the engines cannot take, as a 400 before any work: over the limits above, a lazy
 * grammar without triggers, an empty trigger word, a trigger pattern that is no regular
 * expression. Whether the GBNF parses is llama.cpp's to say (GrammarParser).
 */
export function checkGrammar(grammar: EngineGrammar): void {
  const { gbnf, lazy } = grammar;
  if (gbnf.length > GRAMMAR_LIMITS.maxChars)
    throw invalidGrammar(`The grammar is longer than ${GRAMMAR_LIMITS.maxChars} characters.`);
  const { rules, nesting } = measureGbnf(gbnf);
  if (rules > GRAMMAR_LIMITS.maxRules)
    throw invalidGrammar(`The grammar has more than ${GRAMMAR_LIMITS.maxRules} rules.`);
  if (nesting > GRAMMAR_LIMITS.maxNesting)
    throw invalidGrammar(`The grammar nests groups deeper than ${GRAMMAR_LIMITS.maxNesting}.`);
  if (!lazy) return;
  if (lazy.words.length === 0 && lazy.patterns.length === 0)
    throw invalidGrammar("A lazy grammar needs at least one trigger word or pattern.");
  if (lazy.words.some((word) => word === "")) throw invalidGrammar("A grammar trigger word is empty.");
  for (const pattern of lazy.patterns) {
    try {
      new RegExp(pattern, "d");
    } catch {
      throw invalidGrammar("A grammar trigger pattern is not a valid regular expression.");
    }
  }
}

export function invalidGrammar(message: string): ServiceError {
  return invalidRequest(message, null, "invalid_grammar");
}

/**
 * Rule definitions (an upper bound: `::=` counted outside literals and comments) and the deepest
 * nesting of parentheses, in one pass that skips string literals, character classes and comments.
 */
export function measureGbnf(gbnf: string): { rules: number; nesting: number } {
  let rules = 0;
  let depth = 0;
  let nesting = 0;
  let i = 0;
  const n = gbnf.length;
  while (i < n) {
    const c = gbnf[i];
    if (c === '"' || c === "[") {
      const close = c === '"' ? '"' : "]";
      i++;
      while (i < n && gbnf[i] !== close) i += gbnf[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "#") {
      while (i < n && gbnf[i] !== "\n" && gbnf[i] !== "\r") i++;
    } else {
      if (c === "(") {
        depth++;
        if (depth > nesting) nesting = depth;
      } else if (c === ")") {
        depth = Math.max(0, depth - 1);
      } else if (c === ":" && gbnf.startsWith("::=", i)) {
        rules++;
        i += 2;
      }
      i++;
    }
  }
  return { rules, nesting };
}

/**
 * llama.cpp's GBNF parser, with the grammars it accepted kept (least recently used dropped past
 * 64): a structured-output client sends the same grammar request after request. A grammar the
 * parser refuses is a 400 `invalid_grammar`, never a crash.
 */
export class GrammarParser {
  private readonly parsed = new Map<string, Promise<LlamaGrammar>>();

  constructor(private readonly llama: () => Promise<Llama>) {}

  /** The parsed grammar; throws the 400 for a grammar outside the limits or one llama.cpp refuses. */
  async parse(grammar: EngineGrammar): Promise<LlamaGrammar> {
    checkGrammar(grammar);
    const key = grammar.gbnf;
    let entry = this.parsed.get(key);
    if (entry) {
      this.parsed.delete(key);
    } else {
      entry = this.llama().then(
        (llama) =>
          llama.createGrammar({ grammar: key }).catch((err: unknown) => {
            this.parsed.delete(key);
            throw invalidGrammar(`The grammar could not be parsed: ${parseMessage(err)}`);
          }),
        (err: unknown) => {
          this.parsed.delete(key);
          throw err;
        },
      );
    }
    this.parsed.set(key, entry);
    if (this.parsed.size > CACHE_ENTRIES) this.parsed.delete(this.parsed.keys().next().value as string);
    return entry;
  }

  clear(): void {
    this.parsed.clear();
  }
}

function parseMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}
