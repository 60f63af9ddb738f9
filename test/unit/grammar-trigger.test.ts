import { describe, expect, it } from "vitest";
import { checkGrammar, measureGbnf } from "../../src/backends/local/engines/grammar-check.js";
import { GrammarTrigger } from "../../src/backends/local/engines/grammar-trigger.js";
import { ServiceError } from "../../src/core/errors.js";

function feed(trigger: GrammarTrigger, pieces: string[]): (number | undefined)[] {
  return pieces.map((piece) => trigger.push(piece));
}

describe("a lazy grammar's trigger", () => {
  it("fires on the piece that completes a word, from the word's start", () => {
    const trigger = new GrammarTrigger({ words: ["<tool_call>"], patterns: [] });
    expect(feed(trigger, ["Sure. ", "<tool", '_call>{"'])).toEqual([undefined, undefined, 6]);
    expect(trigger.generated.slice(6)).toBe('<tool_call>{"');
  });

  it("searches a pattern anywhere and starts at its first capture group that matched", () => {
    const trigger = new GrammarTrigger({ words: [], patterns: ['[\\s\\S]*?(\\{\\s*"name")'] });
    expect(feed(trigger, ["I will call ", '{ "na', 'me": 1'])).toEqual([undefined, undefined, 12]);
    const plain = new GrammarTrigger({ words: [], patterns: ["\\d\\d"] });
    expect(feed(plain, ["ab1", "2c"])).toEqual([undefined, 2]);
  });

  it("matches a pattern written ^...$ against the whole text only", () => {
    const trigger = new GrammarTrigger({ words: [], patterns: ["^\\s*(\\[)[\\s\\S]*$"] });
    expect(feed(trigger, ["x["])).toEqual([undefined]);
    const fresh = new GrammarTrigger({ words: [], patterns: ["^\\s*(\\[)[\\s\\S]*$"] });
    expect(feed(fresh, ["  ", "[1"])).toEqual([undefined, 2]);
  });

  it("tries words before patterns", () => {
    const trigger = new GrammarTrigger({ words: ["call"], patterns: ["a"] });
    expect(trigger.push("a call")).toBe(2);
  });
});

describe("checking a grammar before it is parsed", () => {
  it("measures rules and nesting outside literals, classes and comments", () => {
    expect(measureGbnf('root ::= ("(" x)\nx ::= [(] # ((( ::=\n')).toEqual({ rules: 2, nesting: 1 });
    expect(measureGbnf('root ::= ((("a\\"(")))')).toEqual({ rules: 1, nesting: 3 });
  });

  it("refuses what the engines cannot take, as a 400 invalid_grammar", () => {
    const refusals = [
      { gbnf: `root ::= ${"(".repeat(1001)}"a"${")".repeat(1001)}` },
      { gbnf: Array.from({ length: 20_001 }, (_, i) => `r${i} ::= "a"`).join("\n") },
      { gbnf: 'root ::= "a"', lazy: { words: [""], patterns: [] } },
      { gbnf: 'root ::= "a"', lazy: { words: [], patterns: ["[unclosed"] } },
    ];
    for (const grammar of refusals) {
      const err = (() => {
        try {
          checkGrammar(grammar);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ServiceError);
      expect((err as ServiceError).code).toBe("invalid_grammar");
    }
    expect(() =>
      checkGrammar({ gbnf: 'root ::= "a"', lazy: { words: ["<x>"], patterns: [] } }),
    ).not.toThrow();
  });
});
