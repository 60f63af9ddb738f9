import { getEventListeners } from "node:events";
import { describe, expect, it, vi } from "vitest";
import { HookedAbortController, whenAborted } from "../../src/core/abort-hooks.js";

describe("HookedAbortController", () => {
  it("calls its hooks once, after the signal's listeners, with the signal aborted and its reason set", () => {
    const controller = new HookedAbortController();
    const seen: string[] = [];
    controller.signal.addEventListener("abort", () => seen.push("listener"));
    controller.onAbort(() => seen.push(`hook 1: ${controller.signal.aborted} ${controller.signal.reason}`));
    controller.onAbort(() => seen.push("hook 2"));
    controller.abort("gone");
    controller.abort("again");
    expect(seen).toEqual(["listener", "hook 1: true gone", "hook 2"]);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
  });

  it("forgets a hook taken back, and never calls one registered after it aborted", () => {
    const controller = new HookedAbortController();
    const kept = vi.fn();
    const dropped = vi.fn();
    controller.onAbort(kept);
    controller.onAbort(dropped)();
    controller.abort();
    const late = vi.fn();
    controller.onAbort(late)();
    expect(kept).toHaveBeenCalledOnce();
    expect(dropped).not.toHaveBeenCalled();
    expect(late).not.toHaveBeenCalled();
  });

  it("runs every hook though one throws, and reports that one as a throwing listener is", () => {
    const controller = new HookedAbortController();
    const failure = new Error("hook failed");
    const after = vi.fn();
    controller.onAbort(() => {
      throw failure;
    });
    controller.onAbort(after);
    const reported: (() => void)[] = [];
    const queue = vi.spyOn(globalThis, "queueMicrotask").mockImplementation((task) => {
      reported.push(task);
    });
    try {
      expect(() => controller.abort()).not.toThrow();
    } finally {
      queue.mockRestore();
    }
    expect(after).toHaveBeenCalledOnce();
    expect(reported).toHaveLength(1);
    expect(() => reported[0]?.()).toThrow(failure);
  });
});

describe("whenAborted", () => {
  it("goes through the hooks of the signal's own HookedAbortController: no listener on the signal", () => {
    const owner = new HookedAbortController();
    const hook = vi.fn();
    whenAborted(owner.signal, hook, owner);
    expect(getEventListeners(owner.signal, "abort")).toHaveLength(0);
    owner.abort();
    expect(hook).toHaveBeenCalledOnce();
  });

  it("listens to the signal where the owner is not its hooked controller, and stops when told", () => {
    const hook = vi.fn();
    for (const [signal, owner] of [
      [new AbortController().signal, undefined],
      [new AbortController().signal, new HookedAbortController()],
    ] as const) {
      const stop = whenAborted(signal, hook, owner);
      expect(getEventListeners(signal, "abort")).toHaveLength(1);
      stop();
      expect(getEventListeners(signal, "abort")).toHaveLength(0);
    }
    const plain = new AbortController();
    whenAborted(plain.signal, hook);
    plain.abort();
    expect(hook).toHaveBeenCalledOnce();
  });
});
