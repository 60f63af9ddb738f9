import { describe, expect, it } from "vitest";
import { randomId, timeOrderedId } from "../../src/core/ids.js";

describe("time-ordered ids", () => {
  it("sort as text in the order of their times, however far apart", () => {
    const times = [
      0,
      1,
      61,
      62,
      3843,
      Date.parse("2026-12-06T02:00:00Z"),
      Date.parse("2026-12-06T02:00:00.001Z"),
      Date.parse("2100-01-01T00:00:00Z"),
    ];
    const ids = times.map((at) => timeOrderedId(at));
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) expect(id).toMatch(/^[0-9A-Za-z]{20}$/);
  });

  it("differ within one millisecond", () => {
    const at = Date.now();
    const ids = new Set(Array.from({ length: 1000 }, () => timeOrderedId(at)));
    expect(ids.size).toBe(1000);
  });
});

describe("random ids", () => {
  it("are base62 of the length asked for, distinct, across refills of the random pool", () => {
    // 24 characters each: 400 ids draw 9,600 random bytes, more than two refills of the 4 KiB pool.
    const ids = Array.from({ length: 400 }, () => randomId());
    for (const id of ids) expect(id).toMatch(/^[0-9A-Za-z]{24}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect(randomId(7)).toMatch(/^[0-9A-Za-z]{7}$/);
    // Every character of the alphabet turns up (the codes are read right, not one shifted).
    expect(new Set(ids.join("")).size).toBe(62);
  });
});
