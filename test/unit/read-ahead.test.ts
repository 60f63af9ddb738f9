import { describe, expect, it } from "vitest";
import { readAhead } from "../../src/core/read-ahead.js";

describe("reading ahead of the consumer", () => {
  it("yields every item in order and asks for the next before handing one over", async () => {
    const log: string[] = [];
    async function* source() {
      for (let i = 0; i < 3; i++) {
        log.push(`produce ${i}`);
        yield i;
      }
    }
    const seen: number[] = [];
    for await (const item of readAhead(source())) {
      log.push(`consume ${item}`);
      seen.push(item);
    }
    expect(seen).toEqual([0, 1, 2]);
    // Item 1 is produced before item 0 is consumed.
    expect(log.indexOf("produce 1")).toBeLessThan(log.indexOf("consume 0"));
  });

  it("closes the source when the consumer stops early, after the pull in flight settles", async () => {
    let closed = false;
    async function* source() {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    for await (const item of readAhead(source())) if (item === 2) break;
    expect(closed).toBe(true);
  });

  it("rethrows a failure of the source where the consumer reaches it", async () => {
    async function* source() {
      yield 1;
      throw new Error("boom");
    }
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const item of readAhead(source())) seen.push(item);
      })(),
    ).rejects.toThrow("boom");
    expect(seen).toEqual([1]);
  });
});
