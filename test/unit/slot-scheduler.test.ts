import { describe, expect, it } from "vitest";
import { type SlotLease, SlotScheduler } from "../../src/backends/local/slot-scheduler.js";
import { ServiceError } from "../../src/core/errors.js";

const never = () => new AbortController().signal;

/** Resolves with "pending" if the promise has not settled once queued callbacks have run. */
async function state<T>(promise: Promise<T>): Promise<"pending" | "fulfilled" | "rejected"> {
  let result: "pending" | "fulfilled" | "rejected" = "pending";
  promise.then(
    () => {
      result = "fulfilled";
    },
    () => {
      result = "rejected";
    },
  );
  await new Promise<void>((resolve) => setImmediate(resolve));
  return result;
}

describe("SlotScheduler", () => {
  it("admits up to capacity at once, each on a different slot", async () => {
    const scheduler = new SlotScheduler(3, 10);
    const leases = await Promise.all([
      scheduler.acquire(never()),
      scheduler.acquire(never()),
      scheduler.acquire(never()),
    ]);
    expect(leases.map((l) => l.slot).sort()).toEqual([0, 1, 2]);
    expect(scheduler.busy).toBe(3);
    expect(scheduler.queued).toBe(0);

    const fourth = scheduler.acquire(never());
    expect(await state(fourth)).toBe("pending");
    expect(scheduler.queued).toBe(1);
  });

  it("hands a released slot to the waiters in FIFO order", async () => {
    const scheduler = new SlotScheduler(1, 10);
    const first = await scheduler.acquire(never());
    const order: string[] = [];
    const waiters = ["a", "b", "c"].map((name) =>
      scheduler.acquire(never()).then((lease) => {
        order.push(name);
        return lease;
      }),
    );
    expect(scheduler.queued).toBe(3);

    first.release();
    const a = await waiters[0];
    expect(a?.slot).toBe(first.slot);
    expect(order).toEqual(["a"]);
    expect(await state(waiters[1] as Promise<SlotLease>)).toBe("pending");

    a?.release();
    const b = await waiters[1];
    b?.release();
    await waiters[2];
    expect(order).toEqual(["a", "b", "c"]);
    expect(scheduler.queued).toBe(0);
  });

  it("a newcomer does not overtake the queue", async () => {
    const scheduler = new SlotScheduler(1, 10);
    const first = await scheduler.acquire(never());
    const queued = scheduler.acquire(never());
    first.release();
    const late = scheduler.acquire(never());
    expect(await state(queued)).toBe("fulfilled");
    expect(await state(late)).toBe("pending");
  });

  it("refuses with 429 server_overloaded and retry-after headers once the queue is full", async () => {
    const scheduler = new SlotScheduler(1, 2, { retryAfterSeconds: 3 });
    await scheduler.acquire(never());
    void scheduler.acquire(never());
    void scheduler.acquire(never());
    expect(scheduler.queued).toBe(2);

    const refused = await scheduler.acquire(never()).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(ServiceError);
    const error = refused as ServiceError;
    expect(error.status).toBe(429);
    expect(error.code).toBe("server_overloaded");
    expect(error.kind).toBe("rate_limited");
    expect(error.hints).toEqual({ "retry-after": "3", "retry-after-ms": "3000" });
    expect(scheduler.queued).toBe(2);
  });

  it("with a queue of zero refuses as soon as every slot is busy", async () => {
    const scheduler = new SlotScheduler(1, 0);
    await scheduler.acquire(never());
    await expect(scheduler.acquire(never())).rejects.toMatchObject({ status: 429 });
  });

  it("an aborted waiter leaves the queue and its promise rejects with the abort reason", async () => {
    const scheduler = new SlotScheduler(1, 10);
    const held = await scheduler.acquire(never());
    const controller = new AbortController();
    const aborted = scheduler.acquire(controller.signal);
    const next = scheduler.acquire(never());
    expect(scheduler.queued).toBe(2);

    const reason = new Error("client went away");
    controller.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    expect(scheduler.queued).toBe(1);

    // The slot goes to the waiter behind it, not to the one that left.
    held.release();
    expect((await next).slot).toBe(held.slot);
  });

  it("rejects at once when the signal is already aborted", async () => {
    const scheduler = new SlotScheduler(2, 10);
    const controller = new AbortController();
    const reason = new Error("gone");
    controller.abort(reason);
    await expect(scheduler.acquire(controller.signal)).rejects.toBe(reason);
    expect(scheduler.busy).toBe(0);
  });

  it("aborting after the slot was granted changes nothing", async () => {
    const scheduler = new SlotScheduler(1, 10);
    const held = await scheduler.acquire(never());
    const controller = new AbortController();
    const waiting = scheduler.acquire(controller.signal);
    held.release();
    const lease = await waiting;
    controller.abort();
    expect(scheduler.busy).toBe(1);
    lease.release();
    expect(scheduler.busy).toBe(0);
  });

  it("a double release frees the slot only once", async () => {
    const scheduler = new SlotScheduler(2, 10);
    const a = await scheduler.acquire(never());
    const b = await scheduler.acquire(never());
    a.release();
    a.release();
    expect(scheduler.busy).toBe(1);

    // The second release must not hand the same slot to a second holder.
    const c = await scheduler.acquire(never());
    const d = scheduler.acquire(never());
    expect(await state(d)).toBe("pending");
    expect(c.slot).toBe(a.slot);
    expect(new Set([b.slot, c.slot]).size).toBe(2);
    b.release();
    expect((await d).slot).toBe(b.slot);
  });

  it("lets the picker choose among the free slots", async () => {
    const scheduler = new SlotScheduler(4, 10);
    const seen: number[][] = [];
    const lease = await scheduler.acquire(never(), (free) => {
      seen.push([...free]);
      return 2;
    });
    expect(lease.slot).toBe(2);
    expect(seen).toEqual([[0, 1, 2, 3]]);

    const next = await scheduler.acquire(never(), (free) => {
      seen.push([...free]);
      return free[free.length - 1] as number;
    });
    expect(next.slot).toBe(3);
    expect(seen[1]).toEqual([0, 1, 3]);
  });

  it("falls back to a free slot when the picker names one that is not free", async () => {
    const scheduler = new SlotScheduler(2, 10);
    const first = await scheduler.acquire(never(), () => 99);
    expect([0, 1]).toContain(first.slot);
    const second = await scheduler.acquire(never(), () => first.slot);
    expect(second.slot).not.toBe(first.slot);
  });

  it("a queued waiter's picker runs when a slot frees", async () => {
    const scheduler = new SlotScheduler(2, 10);
    const a = await scheduler.acquire(never());
    const b = await scheduler.acquire(never());
    const picked: number[][] = [];
    const waiting = scheduler.acquire(never(), (free) => {
      picked.push([...free]);
      return b.slot;
    });
    a.release();
    b.release();
    // Only one slot was free when the waiter was served, so no choice was needed.
    expect((await waiting).slot).toBe(a.slot);
    expect(picked).toEqual([]);
  });

  it("rejectAll fails every waiter and leaves the holders alone", async () => {
    const scheduler = new SlotScheduler(1, 10);
    const held = await scheduler.acquire(never());
    const w1 = scheduler.acquire(never());
    const w2 = scheduler.acquire(never());
    const shutdown = new Error("shutting down");
    scheduler.rejectAll(shutdown);
    await expect(w1).rejects.toBe(shutdown);
    await expect(w2).rejects.toBe(shutdown);
    expect(scheduler.queued).toBe(0);
    expect(scheduler.busy).toBe(1);
    held.release();
    expect(scheduler.busy).toBe(0);
  });

  describe("interactive requests before batch work", () => {
    it("gives a freed slot to a waiting interactive request before batch requests that queued earlier", async () => {
      const scheduler = new SlotScheduler(1, 10);
      const held = await scheduler.acquire(never());
      const order: string[] = [];
      const batch = scheduler.acquire(never(), undefined, "batch").then((lease) => {
        order.push("batch");
        return lease;
      });
      const interactive = scheduler.acquire(never()).then((lease) => {
        order.push("interactive");
        return lease;
      });
      held.release();
      (await interactive).release();
      await batch;
      expect(order).toEqual(["interactive", "batch"]);
    });

    it("keeps one slot of several free for interactive requests by default", async () => {
      const scheduler = new SlotScheduler(3, 10);
      expect(scheduler.interactiveReserve).toBe(1);
      const batchLeases = [
        await scheduler.acquire(never(), undefined, "batch"),
        await scheduler.acquire(never(), undefined, "batch"),
      ];
      const third = scheduler.acquire(never(), undefined, "batch");
      expect(await state(third)).toBe("pending");
      expect(scheduler.busy).toBe(2);
      // The reserved slot is there for an interactive request at once.
      const interactive = await scheduler.acquire(never());
      expect(batchLeases.map((l) => l.slot)).not.toContain(interactive.slot);
      // A slot freed by batch work goes back to batch work only while the reserve stays free.
      batchLeases[0]?.release();
      expect(await state(third)).toBe("pending");
      interactive.release();
      expect(await state(third)).toBe("fulfilled");
    });

    it("lets batch work use every slot when there is only one, or when the reserve is 0", async () => {
      const single = new SlotScheduler(1, 10);
      expect(single.interactiveReserve).toBe(0);
      await single.acquire(never(), undefined, "batch");
      const open = new SlotScheduler(2, 10, { interactiveReserve: 0 });
      await open.acquire(never(), undefined, "batch");
      await open.acquire(never(), undefined, "batch");
      expect(open.busy).toBe(2);
    });

    it("never reserves every slot: batch work keeps at least one", async () => {
      const scheduler = new SlotScheduler(2, 10, { interactiveReserve: 5 });
      expect(scheduler.interactiveReserve).toBe(1);
      await scheduler.acquire(never(), undefined, "batch");
      expect(await state(scheduler.acquire(never(), undefined, "batch"))).toBe("pending");
    });

    it("does not start batch work while an interactive request waits, even with slots beyond the reserve", async () => {
      const scheduler = new SlotScheduler(3, 10, { interactiveReserve: 1 });
      const a = await scheduler.acquire(never());
      const b = await scheduler.acquire(never());
      const c = await scheduler.acquire(never());
      const waiting = scheduler.acquire(never());
      a.release();
      // The freed slot went to the interactive waiter, so nothing is free for the batch request.
      const lease = await waiting;
      const batch = scheduler.acquire(never(), undefined, "batch");
      expect(await state(batch)).toBe("pending");
      b.release();
      c.release();
      expect(await state(batch)).toBe("fulfilled");
      lease.release();
    });

    it("bounds each queue on its own: batch waiters never fill the queue interactive requests wait in", async () => {
      const scheduler = new SlotScheduler(1, 1);
      await scheduler.acquire(never());
      void scheduler.acquire(never(), undefined, "batch");
      await expect(scheduler.acquire(never(), undefined, "batch")).rejects.toMatchObject({ status: 429 });
      const interactive = scheduler.acquire(never());
      expect(await state(interactive)).toBe("pending");
      expect(scheduler.queued).toBe(2);
    });

    it("an aborted batch waiter leaves its queue, and rejectAll fails waiters of both kinds", async () => {
      const scheduler = new SlotScheduler(1, 10);
      await scheduler.acquire(never());
      const controller = new AbortController();
      const leaving = scheduler.acquire(controller.signal, undefined, "batch");
      const batch = scheduler.acquire(never(), undefined, "batch");
      const interactive = scheduler.acquire(never());
      controller.abort(new Error("cancelled"));
      await expect(leaving).rejects.toThrow("cancelled");
      expect(scheduler.queued).toBe(2);
      const shutdown = new Error("shutting down");
      scheduler.rejectAll(shutdown);
      await expect(batch).rejects.toBe(shutdown);
      await expect(interactive).rejects.toBe(shutdown);
      expect(scheduler.queued).toBe(0);
    });
  });
});
