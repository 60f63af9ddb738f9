import { describe, expect, it } from "vitest";
import { linkSignals } from "../../src/core/linked-signal.js";

describe("linkSignals", () => {
  it("aborts with whichever source aborts first, with its reason", () => {
    const request = new AbortController();
    const process = new AbortController();
    const linked = linkSignals(request.signal, process.signal);
    expect(linked.signal.aborted).toBe(false);
    process.abort(new Error("engine process exited"));
    expect(linked.signal.aborted).toBe(true);
    expect((linked.signal.reason as Error).message).toBe("engine process exited");
    request.abort(new Error("client left"));
    expect((linked.signal.reason as Error).message).toBe("engine process exited");
  });

  it("is an already aborted source when one is", () => {
    const gone = AbortSignal.abort(new Error("gone"));
    expect(linkSignals(gone, new AbortController().signal).signal).toBe(gone);
    expect(linkSignals(new AbortController().signal, gone).signal).toBe(gone);
  });

  it("stops following its sources once disposed (no listener is left on the long-lived one)", () => {
    const request = new AbortController();
    const process = new AbortController();
    const linked = linkSignals(request.signal, process.signal);
    linked.dispose();
    process.abort();
    request.abort();
    expect(linked.signal.aborted).toBe(false);
  });
});
