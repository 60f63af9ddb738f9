import { EventEmitter } from "node:events";
import type { FastifyReply } from "fastify";
import { describe, expect, it } from "vitest";
import { requestAbortSignal } from "../../src/http/request-context.js";

/** The part of a reply the signal watches: its raw response's close and whether it finished. */
function fakeReply(): { reply: FastifyReply; close(finished: boolean): void } {
  const raw = Object.assign(new EventEmitter(), { writableFinished: false });
  return {
    reply: { raw } as unknown as FastifyReply,
    close: (finished) => {
      raw.writableFinished = finished;
      raw.emit("close");
    },
  };
}

describe("a request's abort signal", () => {
  it("aborts when the client goes away before the response is complete, not after it completed", () => {
    const shutdown = new AbortController();
    const gone = fakeReply();
    const done = fakeReply();
    const goneSignal = requestAbortSignal(gone.reply, shutdown.signal);
    const doneSignal = requestAbortSignal(done.reply, shutdown.signal);
    gone.close(false);
    done.close(true);
    expect(goneSignal.aborted).toBe(true);
    expect((goneSignal.reason as Error).message).toBe("client disconnected");
    expect(doneSignal.aborted).toBe(false);
  });

  it("aborts every request still in flight when shutdown gives up, with shutdown's reason", () => {
    const shutdown = new AbortController();
    const first = fakeReply();
    const second = fakeReply();
    const finished = fakeReply();
    const signals = [first, second, finished].map((r) => requestAbortSignal(r.reply, shutdown.signal));
    finished.close(true);
    const reason = new Error("server shutting down");
    shutdown.abort(reason);
    expect(signals.map((s) => s.aborted)).toEqual([true, true, false]);
    expect(signals[0]?.reason).toBe(reason);
    // A request arriving after that is aborted from the start.
    expect(requestAbortSignal(fakeReply().reply, shutdown.signal).reason).toBe(reason);
  });
});
