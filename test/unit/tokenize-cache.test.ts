import { describe, expect, it } from "vitest";
import { TokenizeCache } from "../../src/backends/local/engines/tokenize-cache.js";

describe("the cache of texts tokenized by an engine process", () => {
  it("answers a text it holds with a copy of its tokens", () => {
    const cache = new TokenizeCache(8);
    cache.set("hello", [1, 2, 3]);
    const tokens = cache.get("hello") as number[];
    expect(tokens).toEqual([1, 2, 3]);
    tokens.push(4);
    expect(cache.get("hello")).toEqual([1, 2, 3]);
    expect(cache.get("other")).toBeUndefined();
  });

  it("drops the least recently used entry past its entry count", () => {
    const cache = new TokenizeCache(2);
    cache.set("a", [1]);
    cache.set("b", [2]);
    cache.get("a");
    cache.set("c", [3]);
    expect(cache.get("b")).toBeUndefined();
    expect(cache.get("a")).toEqual([1]);
    expect(cache.get("c")).toEqual([3]);
  });

  it("stays within its size in characters and tokens, however long the texts", () => {
    const cache = new TokenizeCache(1000, 100, 60);
    for (let i = 0; i < 10; i++)
      cache.set(
        `${i}`.repeat(40),
        Array.from({ length: 20 }, (_, k) => k),
      );
    // 60 per entry: one fits in 100, the newest.
    expect(cache.get("9".repeat(40))).toHaveLength(20);
    expect(cache.get("8".repeat(40))).toBeUndefined();
    // Longer than maxTextLength: never kept.
    cache.set("x".repeat(61), [1]);
    expect(cache.get("x".repeat(61))).toBeUndefined();
    // Replacing an entry does not count it twice.
    cache.set("9".repeat(40), [1, 2]);
    cache.set("y", [1]);
    expect(cache.get("9".repeat(40))).toEqual([1, 2]);
    expect(cache.get("y")).toEqual([1]);
  });
});
