import { describe, expect, it } from "vitest";
import { timeOrderedId } from "../../src/core/ids.js";

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
