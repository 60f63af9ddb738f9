import { overloaded } from "../../core/errors.js";

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

/**
 * Hands out a fixed number of engine slots. Requests beyond capacity wait in a bounded FIFO
 * queue; beyond that they are refused at once with 429 so overload never turns into unbounded
 * memory or a hang. A waiter whose client goes away leaves the queue immediately.
 */
export class SlotScheduler {
  private readonly free: number[];
  private readonly queue: Waiter[] = [];

  constructor(
    readonly slots: number,
    private readonly maxQueue: number,
    private readonly retryAfterSeconds = 1,
  ) {
    this.free = Array.from({ length: slots }, (_, i) => i);
  }

  get busy(): number {
    return this.slots - this.free.length;
  }

  get queued(): number {
    return this.queue.length;
  }

  acquire(signal: AbortSignal, pick?: SlotPicker): Promise<SlotLease> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.free.length > 0 && this.queue.length === 0) return Promise.resolve(this.lease(pick));
    if (this.queue.length >= this.maxQueue) return Promise.reject(overloaded(this.retryAfterSeconds));
    return new Promise<SlotLease>((resolve, reject) => {
      const onAbort = () => {
        const index = this.queue.indexOf(waiter);
        if (index >= 0) this.queue.splice(index, 1);
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
      this.queue.push(waiter);
    });
  }

  /** Fails every waiter (shutdown). */
  rejectAll(err: unknown): void {
    for (const waiter of this.queue.splice(0)) waiter.reject(err);
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
    while (this.free.length > 0 && this.queue.length > 0) {
      const waiter = this.queue.shift() as Waiter;
      waiter.resolve(this.lease(waiter.pick));
    }
  }
}
