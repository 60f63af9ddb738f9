import { describe, expect, it } from "vitest";
import {
  StoreVectorCache,
  type StoreVectorLoader,
} from "../../src/storage/repositories/store-vector-cache.js";
import {
  rowBytes,
  StoreVectorsBuilder,
  searchStoreVectors,
} from "../../src/storage/repositories/store-vectors.js";
import { float32Bytes } from "../../src/storage/repositories/vector-ingestion-repository.js";

/** A store of `rows` vectors of 4 floats, row i pointing mostly along axis i % 4. */
function storeOf(rows: number, files = ["file-a"]) {
  const builder = new StoreVectorsBuilder(4, rows);
  for (let i = 0; i < rows; i++) {
    const v = new Float32Array(4);
    v[i % 4] = 2; // not unit length: the builder scales it
    v[(i + 1) % 4] = i / rows;
    builder.add(100 + i, files[i % files.length] as string, float32Bytes(v));
  }
  return builder.build();
}

/** A loader that counts what it is asked, over a store of `rows` rows. */
function loaderOf(rows: number, options: { unchanged?: boolean } = {}) {
  const calls = { count: 0, read: 0, withOlder: 0 };
  const loader: StoreVectorLoader = {
    count: async () => {
      calls.count++;
      return rows;
    },
    read: async (capacity, older) => {
      calls.read++;
      if (older) calls.withOlder++;
      expect(capacity).toBe(rows);
      return { vectors: storeOf(rows), unchanged: options.unchanged ?? true };
    },
  };
  return { loader, calls };
}

describe("searching a store's vectors in memory", () => {
  it("ranks by cosine exactly, best first, within the files asked for", async () => {
    const store = storeOf(8, ["file-a", "file-b"]);
    const query = Float32Array.from([1, 0.3, 0, 0]);
    const hits = await searchStoreVectors(store, query, null, 3);
    // Rows 0 and 4 point along axis 0 (nudged toward axis 1 by 0 and 0.5): the query is nearest
    // row 4; then row 7 (along axis 3, nudged toward axis 0 by 0.875).
    expect(hits.map((h) => h.chunkId)).toEqual([104, 100, 107]);
    const cosine = (a: number[], b: number[]) =>
      a.reduce((s, x, i) => s + x * (b[i] as number), 0) / Math.hypot(...a) / Math.hypot(...b);
    expect(hits[0]?.score).toBeCloseTo(cosine([1, 0.3, 0, 0], [2, 0.5, 0, 0]), 6);
    expect(hits[1]?.score).toBeCloseTo(cosine([1, 0.3, 0, 0], [2, 0, 0, 0]), 6);
    // Rows alternate files: file-b holds the odd rows.
    expect((await searchStoreVectors(store, query, ["file-b"], 2)).map((h) => h.chunkId)).toEqual([107, 101]);
    expect(await searchStoreVectors(store, query, ["file-none"], 2)).toEqual([]);
    // Another vector size matches nothing, as in the database scan.
    expect(await searchStoreVectors(store, new Float32Array(3), null, 2)).toEqual([]);
  });

  it("puts the lower chunk id first on equal scores, scores a zero vector 0, and skips rows of another size", async () => {
    const builder = new StoreVectorsBuilder(4, 4);
    builder.add(4, "f", float32Bytes(Float32Array.from([3, 0, 0, 0])));
    builder.add(1, "f", float32Bytes(Float32Array.from([0, 0, 0, 0])));
    builder.add(3, "f", float32Bytes(Float32Array.from([1, 2, 3])));
    builder.add(2, "f", float32Bytes(Float32Array.from([1, 0, 0, 0])));
    const store = builder.build();
    expect(store.count).toBe(3);
    // Room was made for the 4 rows counted before loading.
    expect(store.bytes).toBe(4 * rowBytes(4));
    const hits = await searchStoreVectors(store, Float32Array.from([5, 0, 0, 0]), null, 3);
    expect(hits).toEqual([
      { chunkId: 2, score: 1 },
      { chunkId: 4, score: 1 },
      { chunkId: 1, score: 0 },
    ]);
    expect(await searchStoreVectors(store, Float32Array.from([5, 0, 0, 0]), null, 1)).toEqual([
      { chunkId: 2, score: 1 },
    ]);
  });

  it("finds exactly the best rows of a larger store, whatever the vector size, as scoring every row in doubles does", async () => {
    let seed = 7;
    const next = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32 - 0.5;
    };
    for (const dims of [3, 37, 384]) {
      const distinct = Array.from({ length: 3000 }, () => Float32Array.from({ length: dims }, next));
      // Every tenth vector twice, the copy under a lower id: exact ties, broken by the lower id.
      const rows = [...distinct, ...distinct.filter((_, i) => i % 10 === 0)];
      const idOf = (i: number) => (i < distinct.length ? 10_000 + i : i - distinct.length);
      const builder = new StoreVectorsBuilder(dims, rows.length);
      for (const [i, v] of rows.entries()) builder.add(idOf(i), `file-${i % 3}`, float32Bytes(v));
      const store = builder.build();
      for (let probe = 0; probe < 5; probe++) {
        const query = probe === 0 ? (rows[0] as Float32Array) : Float32Array.from({ length: dims }, next);
        const expected = rows
          .map((v, i) => {
            let dot = 0;
            let a = 0;
            let b = 0;
            for (let d = 0; d < dims; d++) {
              dot += (v[d] as number) * (query[d] as number);
              a += (v[d] as number) ** 2;
              b += (query[d] as number) ** 2;
            }
            return { chunkId: idOf(i), score: dot / Math.sqrt(a * b) };
          })
          .sort((x, y) => y.score - x.score || x.chunkId - y.chunkId)
          .slice(0, 20);
        const hits = await searchStoreVectors(store, query, null, 20);
        expect(hits.map((h) => h.chunkId)).toEqual(expected.map((h) => h.chunkId));
        for (const [i, hit] of hits.entries()) expect(hit.score).toBeCloseTo(expected[i]?.score as number, 6);
      }
    }
  });

  it("refuses more rows than it counted (the store grew while it was read)", () => {
    const builder = new StoreVectorsBuilder(4, 1);
    expect(builder.add(1, "f", float32Bytes(new Float32Array(4)))).toBe(true);
    expect(builder.add(2, "f", float32Bytes(new Float32Array(4)))).toBe(false);
  });
});

describe("the cache of stores' vectors", () => {
  const ten = 10 * rowBytes(4);

  it("loads a store once per version, however many searches ask at once", async () => {
    const cache = new StoreVectorCache(3 * ten);
    const { loader, calls } = loaderOf(10);
    const [a, b] = await Promise.all([
      cache.vectors("vs_1", 1, 4, loader),
      cache.vectors("vs_1", 1, 4, loader),
    ]);
    expect(a).toBe(b);
    expect(calls).toEqual({ count: 1, read: 1, withOlder: 0 });
    expect(cache.held("vs_1", 1, 4)).toBe(a);
    expect(await cache.vectors("vs_1", 1, 4, loader)).toBe(a);
    expect(calls.read).toBe(1);
    // A write raised the version: the old copy is replaced, the load reading what it can from it.
    expect(cache.held("vs_1", 2, 4)).toBeUndefined();
    await cache.vectors("vs_1", 2, 4, loader);
    expect(calls).toEqual({ count: 2, read: 2, withOlder: 1 });
    expect(cache.held("vs_1", 1, 4)).toBeUndefined();
    expect(cache.stats()).toEqual({ stores: 1, bytes: ten, budgetBytes: 3 * ten });
  });

  it("drops the least recently searched stores to stay within its budget", async () => {
    const cache = new StoreVectorCache(2 * ten);
    const loads = new Map<string, ReturnType<typeof loaderOf>>();
    const search = (id: string) => {
      const entry = loads.get(id) ?? loaderOf(10);
      loads.set(id, entry);
      return cache.vectors(id, 1, 4, entry.loader);
    };
    await search("vs_a");
    await search("vs_b");
    await search("vs_a"); // vs_b is now the least recently searched
    await search("vs_c");
    expect(cache.held("vs_b", 1, 4)).toBeUndefined();
    expect(cache.held("vs_a", 1, 4)).toBeDefined();
    expect(cache.held("vs_c", 1, 4)).toBeDefined();
    expect(cache.stats().bytes).toBe(2 * ten);
    await search("vs_b"); // loaded again; vs_a (touched before vs_c by held()) goes
    expect(loads.get("vs_b")?.calls.read).toBe(2);
    expect(loads.get("vs_a")?.calls.read).toBe(1);
    expect(cache.held("vs_a", 1, 4)).toBeUndefined();
    expect(cache.stats()).toEqual({ stores: 2, bytes: 2 * ten, budgetBytes: 2 * ten });
  });

  it("never loads a store larger than the budget, and asks again only at a new version", async () => {
    const cache = new StoreVectorCache(ten);
    const { loader, calls } = loaderOf(11);
    expect(await cache.vectors("vs_big", 1, 4, loader)).toBeNull();
    expect(await cache.vectors("vs_big", 1, 4, loader)).toBeNull();
    expect(calls).toEqual({ count: 1, read: 0, withOlder: 0 });
    expect(cache.overBudget("vs_big", 1, 4)).toBe(true);
    expect(await cache.vectors("vs_big", 2, 4, loader)).toBeNull();
    expect(calls.count).toBe(2);
    expect(cache.stats().bytes).toBe(0);
  });

  it("answers from a copy read while the store changed, but does not keep it", async () => {
    const cache = new StoreVectorCache(ten);
    const { loader, calls } = loaderOf(10, { unchanged: false });
    expect((await cache.vectors("vs_1", 1, 4, loader))?.count).toBe(10);
    expect(cache.held("vs_1", 1, 4)).toBeUndefined();
    await cache.vectors("vs_1", 1, 4, loader);
    expect(calls.read).toBe(2);
    expect(cache.stats().bytes).toBe(0);
  });

  it("forgets a store that is gone", async () => {
    const cache = new StoreVectorCache(ten);
    await cache.vectors("vs_1", 1, 4, loaderOf(10).loader);
    cache.forget("vs_1");
    expect(cache.held("vs_1", 1, 4)).toBeUndefined();
    expect(cache.stats()).toEqual({ stores: 0, bytes: 0, budgetBytes: ten });
  });
});
