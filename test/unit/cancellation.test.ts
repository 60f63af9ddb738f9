import { getEventListeners } from "node:events";
import { describe, expect, it, vi } from "vitest";
import { CancelSource, cancellationOf } from "../../src/core/cancellation.js";

describe("CancelSource", () => {
  it("calls its hooks once, with it cut and its reason set", () => {
    const cancel = new CancelSource();
    const seen: string[] = [];
    cancel.onAbort(() => seen.push(`hook 1: ${cancel.aborted} ${cancel.reason}`));
    cancel.onAbort(() => seen.push("hook 2"));
    expect([cancel.aborted, cancel.reason]).toEqual([false, undefined]);
    cancel.abort("gone");
    cancel.abort("again");
    expect(seen).toEqual(["hook 1: true gone", "hook 2"]);
    expect(cancel.reason).toBe("gone");
  });

  it("is cut with an AbortError when no reason is given, as AbortController.abort() is", () => {
    const cancel = new CancelSource();
    cancel.abort();
    expect(cancel.reason).toBeInstanceOf(DOMException);
    expect((cancel.reason as DOMException).name).toBe("AbortError");
  });

  it("forgets a hook taken back, and never calls one registered after it was cut", () => {
    const cancel = new CancelSource();
    const kept = vi.fn();
    const dropped = vi.fn();
    cancel.onAbort(kept);
    cancel.onAbort(dropped)();
    cancel.abort();
    const late = vi.fn();
    cancel.onAbort(late)();
    expect(kept).toHaveBeenCalledOnce();
    expect(dropped).not.toHaveBeenCalled();
    expect(late).not.toHaveBeenCalled();
  });

  it("runs every hook though one throws, and reports that one as a throwing listener is", () => {
    const cancel = new CancelSource();
    const failure = new Error("hook failed");
    const after = vi.fn();
    cancel.onAbort(() => {
      throw failure;
    });
    cancel.onAbort(after);
    const reported: (() => void)[] = [];
    const queue = vi.spyOn(globalThis, "queueMicrotask").mockImplementation((task) => {
      reported.push(task);
    });
    try {
      expect(() => cancel.abort()).not.toThrow();
    } finally {
      queue.mockRestore();
    }
    expect(after).toHaveBeenCalledOnce();
    expect(reported).toHaveLength(1);
    expect(() => reported[0]?.()).toThrow(failure);
  });

  it("makes its AbortSignal on first use: the signal aborts with it, its listeners before the hooks", () => {
    const cancel = new CancelSource();
    const seen: string[] = [];
    const signal = cancel.signal;
    expect(cancel.signal).toBe(signal);
    signal.addEventListener("abort", () => seen.push(`listener: ${signal.reason}`));
    cancel.onAbort(() => seen.push("hook"));
    cancel.abort("gone");
    expect(seen).toEqual(["listener: gone", "hook"]);
  });

  it("gives a signal aborted already, with its reason, when asked after it was cut", () => {
    const cancel = new CancelSource();
    const reason = new Error("client disconnected");
    cancel.abort(reason);
    expect(cancel.signal.aborted).toBe(true);
    expect(cancel.signal.reason).toBe(reason);
  });
});

describe("cancellationOf", () => {
  it("hands a Cancellation on as it is", () => {
    const cancel = new CancelSource();
    expect(cancellationOf(cancel)).toBe(cancel);
  });

  it("reads an AbortSignal through, and turns hooks into listeners that can be taken back", () => {
    const controller = new AbortController();
    const cancel = cancellationOf(controller.signal);
    expect(cancel.signal).toBe(controller.signal);
    const dropped = vi.fn();
    const stop = cancel.onAbort(dropped);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    stop();
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    const kept = vi.fn();
    cancel.onAbort(kept);
    expect([cancel.aborted, cancel.reason]).toEqual([false, undefined]);
    controller.abort("gone");
    expect([cancel.aborted, cancel.reason]).toEqual([true, "gone"]);
    expect(kept).toHaveBeenCalledOnce();
    expect(dropped).not.toHaveBeenCalled();
    const late = vi.fn();
    cancel.onAbort(late);
    expect(late).not.toHaveBeenCalled();
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });
});
