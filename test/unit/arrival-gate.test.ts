import { describe, expect, it, vi } from "vitest";
import { ArrivalGate } from "../../src/backends/local/arrival-gate.js";
import { settledSoon } from "../helpers/wait-for.js";

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("ArrivalGate", () => {
  it("never holds a request that is alone", async () => {
    const gate = new ArrivalGate(10_000);
    await gate.preparing(async () => "prepared");
    expect(gate.beforeSubmit()).toBeUndefined();
  });

  it("holds prepared requests until the last one prepared with them is ready, then lets all go", async () => {
    const gate = new ArrivalGate(10_000);
    const slow = deferred();
    const fast = gate.preparing(async () => "fast");
    const pending = gate.preparing(() => slow.promise);
    await fast;
    const first = gate.beforeSubmit();
    expect(await settledSoon(first)).toBe(false);
    slow.resolve();
    await pending;
    expect(gate.beforeSubmit()).toBeUndefined();
    expect(await settledSoon(first)).toBe(true);
  });

  it("lets a failed preparation count as done", async () => {
    const gate = new ArrivalGate(10_000);
    const failing = deferred();
    const bad = gate.preparing(async () => {
      await failing.promise;
      throw new Error("refused");
    });
    const wait = gate.beforeSubmit();
    failing.resolve();
    await expect(bad).rejects.toThrow("refused");
    expect(await settledSoon(wait)).toBe(true);
  });

  it("stops waiting after its bound even if another preparation is still running", async () => {
    vi.useFakeTimers();
    try {
      const gate = new ArrivalGate(10);
      void gate.preparing(() => new Promise(() => {}));
      let released = false;
      void gate.beforeSubmit()?.then(() => {
        released = true;
      });
      await vi.advanceTimersByTimeAsync(9);
      expect(released).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(released).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
