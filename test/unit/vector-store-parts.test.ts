import { describe, expect, it } from "vitest";
import { AUTO_CHUNKING, fitChunking } from "../../src/api/vector-stores/chunk-sizes.js";
import { type ChunkTokenizer, chunkText } from "../../src/api/vector-stores/chunker.js";
import { checkFilter, matchesFilter } from "../../src/api/vector-stores/filters.js";
import { keywordTerms } from "../../src/api/vector-stores/search.js";
import type { ModelMetadata } from "../../src/backends/local/engine.js";
import { embeddingInputLimit } from "../../src/backends/local/local-embeddings.js";
import { contextLengthExceeded } from "../../src/core/errors.js";

/** One token per character, refusing texts longer than `limit` as a model's tokenizer does. */
function charTokenizer(limit = Number.POSITIVE_INFINITY): ChunkTokenizer & { calls: number } {
  const tokenizer = {
    calls: 0,
    async tokenize(text: string) {
      tokenizer.calls++;
      if (text.length > limit) throw contextLengthExceeded(limit, text.length, "content", true);
      return [...text].map((c) => c.codePointAt(0) as number);
    },
    async detokenize(tokens: readonly number[]) {
      return String.fromCodePoint(...tokens);
    },
  };
  return tokenizer;
}

async function collect(pages: string[], max: number, overlap: number, tokenizer: ChunkTokenizer | null) {
  const out = [];
  for await (const chunk of chunkText(
    pages,
    { maxChunkSizeTokens: max, chunkOverlapTokens: overlap },
    tokenizer,
  ))
    out.push(chunk);
  return out;
}

describe("chunking", () => {
  it("cuts windows of the asked size that overlap by the asked tokens and end at the text's end", async () => {
    const text = "abcdefghijklmnopqrstuvwxyz";
    const chunks = await collect([text], 10, 4, charTokenizer());
    expect(chunks.map((c) => c.text)).toEqual(["abcdefghij", "ghijklmnop", "mnopqrstuv", "stuvwxyz"]);
    expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3]);
    expect(chunks.map((c) => c.tokens)).toEqual([10, 10, 10, 8]);
  });

  it("gives the same chunks when the tokenizer only takes short texts (pieces are halved until they fit)", async () => {
    const text = Array.from({ length: 3000 }, (_, i) => `w${i}`).join(" ");
    const whole = await collect([text], 200, 50, charTokenizer());
    const small = charTokenizer(1000);
    const pieces = await collect([text], 200, 50, small);
    expect(pieces).toEqual(whole);
    expect(small.calls).toBeGreaterThan(10);
  });

  it("joins pages and counts about four characters a token without a tokenizer", async () => {
    const chunks = await collect(["a".repeat(30), "b".repeat(30)], 10, 5, null);
    expect(chunks[0]?.text).toBe(`${"a".repeat(30)}\n\n${"b".repeat(8)}`);
    expect(chunks.every((c) => c.text.length <= 40)).toBe(true);
    expect(chunks.at(-1)?.text.endsWith("b")).toBe(true);
  });

  it("shortens a window whose text encodes to more tokens than asked, and loses no text doing so", async () => {
    // Encoding again costs one token more wherever a text ends inside a word (a seam).
    const seams: ChunkTokenizer = {
      async tokenize(text: string) {
        const ids = [...text].map((c) => c.codePointAt(0) as number);
        return /\w$/.test(text) ? [...ids, 0] : ids;
      },
      async detokenize(tokens: readonly number[]) {
        return String.fromCodePoint(...tokens.filter((t) => t !== 0));
      },
    };
    const text = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
    const chunks = await collect([text], 10, 0, seams);
    for (const chunk of chunks) expect((await seams.tokenize(chunk.text)).length).toBeLessThanOrEqual(10);
    expect(chunks.map((c) => c.text).join("")).toBe(text);
    expect(chunks.some((c) => c.text.length < 10)).toBe(true);
  });
});

describe("chunk sizes for the embedding model", () => {
  const auto = AUTO_CHUNKING;
  const fixed = (max: number, overlap: number) => ({ maxChunkSizeTokens: max, chunkOverlapTokens: overlap });

  it("keeps auto at 800/400 where the model takes that much, else lowers it to the limit with half as overlap", () => {
    expect(fitChunking(auto, Number.POSITIVE_INFINITY, "m")).toEqual({ sizes: auto });
    expect(fitChunking(auto, 8191, "m")).toEqual({ sizes: auto });
    expect(fitChunking(auto, 509, "m")).toEqual({
      sizes: { maxChunkSizeTokens: 509, chunkOverlapTokens: 254, auto: true },
    });
    expect(fitChunking(auto, 100, "m")).toEqual({
      sizes: { maxChunkSizeTokens: 100, chunkOverlapTokens: 50, auto: true },
    });
  });

  it("keeps a static size that fits and refuses one that does not, naming the limit", () => {
    expect(fitChunking(fixed(509, 0), 509, "bge")).toEqual({ sizes: fixed(509, 0) });
    const refused = fitChunking(fixed(1000, 400), 509, "bge");
    expect(refused).toEqual({ refusal: expect.stringContaining("takes at most 509 tokens per input") });
    expect(JSON.stringify(refused)).toContain("'bge'");
  });

  it("refuses every strategy for a model that cannot take the smallest chunk the spec allows", () => {
    expect(fitChunking(auto, 99, "m")).toEqual({ refusal: expect.stringContaining("at least 100") });
    expect(fitChunking(fixed(100, 0), 64, "m")).toEqual({ refusal: expect.stringContaining("at most 64") });
  });

  it("tells a local model's limit in plain-text tokens: its context less a spare position and the framing tokens", () => {
    const meta = {
      contextSize: 512,
      addBosToken: true,
      bosTokenId: 1,
      addEosToken: true,
      eosTokenId: 2,
    } as ModelMetadata;
    expect(embeddingInputLimit(meta)).toBe(509);
    expect(embeddingInputLimit({ ...meta, addEosToken: false })).toBe(510);
    expect(embeddingInputLimit({ ...meta, bosTokenId: undefined, addEosToken: false })).toBe(511);
  });
});

describe("attribute filters", () => {
  const attrs = { year: 2024, region: "eu", public: true, date: "2024-05-01" };
  it("compares numbers, strings and booleans; a missing attribute fails all but ne and nin", () => {
    expect(matchesFilter({ type: "eq", key: "region", value: "eu" }, attrs)).toBe(true);
    expect(matchesFilter({ type: "gt", key: "year", value: 2023 }, attrs)).toBe(true);
    expect(matchesFilter({ type: "lte", key: "year", value: 2023 }, attrs)).toBe(false);
    expect(matchesFilter({ type: "gte", key: "date", value: "2024-01-01" }, attrs)).toBe(true);
    expect(matchesFilter({ type: "gt", key: "region", value: 3 }, attrs)).toBe(false);
    expect(matchesFilter({ type: "in", key: "year", value: [2020, 2024] }, attrs)).toBe(true);
    expect(matchesFilter({ type: "eq", key: "public", value: true }, attrs)).toBe(true);
    expect(matchesFilter({ type: "eq", key: "nope", value: "x" }, attrs)).toBe(false);
    expect(matchesFilter({ type: "ne", key: "nope", value: "x" }, attrs)).toBe(true);
    expect(matchesFilter({ type: "nin", key: "nope", value: ["x"] }, null)).toBe(true);
    expect(
      matchesFilter(
        {
          type: "and",
          filters: [
            { type: "eq", key: "region", value: "eu" },
            {
              type: "or",
              filters: [
                { type: "lt", key: "year", value: 2000 },
                { type: "eq", key: "public", value: true },
              ],
            },
          ],
        },
        attrs,
      ),
    ).toBe(true);
  });

  it("refuses lists with scalar comparisons, scalars with in/nin, and nesting past the bound", () => {
    expect(() => checkFilter({ type: "eq", key: "a", value: ["x"] }, "filters")).toThrow(/in' or 'nin/);
    expect(() => checkFilter({ type: "in", key: "a", value: "x" }, "filters")).toThrow(/list value/);
    let deep: Parameters<typeof checkFilter>[0] = { type: "eq", key: "a", value: 1 };
    for (let i = 0; i < 10; i++) deep = { type: "and", filters: [deep] };
    expect(() => checkFilter(deep, "filters")).toThrow(/nest/);
  });
});

it("takes a query's words, lower-cased and once each, as keyword terms", () => {
  expect(keywordTerms('How do "Penguins" keep warm? penguins!')).toEqual([
    "how",
    "do",
    "penguins",
    "keep",
    "warm",
  ]);
  expect(keywordTerms("…")).toEqual([]);
});
