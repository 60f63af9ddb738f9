import { overloaded } from "../../core/errors.js";
import type { RequestPriority } from "../../core/generation.js";

export interface SlotLease {
  readonly slot: number;
  release(): void;
}

interface Waiter {
  resolve(lease: SlotLease): void;
  reject(err: unknown): void;
  pick: SlotPicker | undefined;
}

/** Chooses among free slots (for example the one whose KV cache shares the longest prefix). */
export type SlotPicker = (freeSlots: readonly number[]) => number;

export interface SlotSchedulerOptions {
  /** Seconds a refused request is told to wait (retry-after). */
  retryAfterSeconds?: number;
  /**
   * Slots batch work never takes: they stay free for interactive requests. Default 1 when there
   * is more than one slot, else 0; at most slots − 1, so batch work always has a slot to run on.
   */
  interactiveReserve?: number;
}

/** The reserve a scheduler keeps for interactive requests when none is configured. */
export function defaultInteractiveReserve(slots: number): number {
  return slots > 1 ? 1 : 0;
}

/**
 * Hands out a fixed number of engine slots. Requests beyond capacity wait in bounded FIFO queues,
 * one per priority; beyond that they are refused at once with 429 so overload never turns into
 * unbounded memory or a hang. A waiter whose client goes away leaves its queue immediately.
 *
 * Interactive requests come first: a freed slot goes to a waiting interactive request before any
 * batch request, and batch requests never take the last `interactiveReserve` free slots, so an
 * interactive request arriving while a batch runs finds a slot at once instead of waiting for a
 * batch line to finish. Nothing running is ever interrupted.
 */
export class SlotScheduler {
  private readonly free: number[];
  private readonly queues: Record<RequestPriority, Waiter[]> = { interactive: [], batch: [] };
  private readonly retryAfterSeconds: number;
  readonly interactiveReserve: number;

  constructor(
    readonly slots: number,
    private readonly maxQueue: number,
    options: SlotSchedulerOptions = {},
  ) {
    this.free = Array.from({ length: slots }, (_, i) => i);
    this.retryAfterSeconds = options.retryAfterSeconds ?? 1;
    const reserve = options.interactiveReserve ?? defaultInteractiveReserve(slots);
    this.interactiveReserve = Math.max(0, Math.min(reserve, slots - 1));
  }

  get busy(): number {
    return this.slots - this.free.length;
  }

  /** Requests waiting for a slot, of either priority. */
  get queued(): number {
    return this.queues.interactive.length + this.queues.batch.length;
  }

  acquire(
    signal: AbortSignal,
    pick?: SlotPicker,
    priority: RequestPriority = "interactive",
  ): Promise<SlotLease> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const queue = this.queues[priority];
    if (queue.length === 0 && this.mayStart(priority)) return Promise.resolve(this.lease(pick));
    if (queue.length >= this.maxQueue) return Promise.reject(overloaded(this.retryAfterSeconds));
    return new Promise<SlotLease>((resolve, reject) => {
      const onAbort = () => {
        const index = queue.indexOf(waiter);
        if (index >= 0) queue.splice(index, 1);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        resolve: (lease) => {
          signal.removeEventListener("abort", onAbort);
          resolve(lease);
        },
        reject,
        pick,
      };
      signal.addEventListener("abort", onAbort, { once: true });
      queue.push(waiter);
    });
  }

  /** Fails every waiter (shutdown). */
  rejectAll(err: unknown): void {
    for (const queue of Object.values(this.queues)) {
      for (const waiter of queue.splice(0)) waiter.reject(err);
    }
  }

  /** Whether a request of `priority` with no one of its kind ahead of it may take a slot now. */
  private mayStart(priority: RequestPriority): boolean {
    if (priority === "interactive") return this.free.length > 0;
    return this.queues.interactive.length === 0 && this.free.length > this.interactiveReserve;
  }

  private lease(pick: SlotPicker | undefined): SlotLease {
    let index = 0;
    if (pick && this.free.length > 1) {
      const chosen = pick(this.free);
      index = Math.max(0, this.free.indexOf(chosen));
    }
    const slot = this.free.splice(index, 1)[0] as number;
    let released = false;
    return {
      slot,
      release: () => {
        if (released) return;
        released = true;
        this.free.push(slot);
        this.dispatch();
      },
    };
  }

  private dispatch(): void {
    for (const priority of ["interactive", "batch"] as const) {
      const queue = this.queues[priority];
      while (queue.length > 0 && this.mayStart(priority)) {
        const waiter = queue.shift() as Waiter;
        waiter.resolve(this.lease(waiter.pick));
      }
    }
  }
}
