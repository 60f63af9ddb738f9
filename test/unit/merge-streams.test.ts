import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mergeStreams } from "../../src/core/merge-streams.js";

/** An async iterator the test drives by hand: push values, end it or fail it; records return(). */
class Channel<T> implements AsyncIterableIterator<T> {
  returned = 0;
  private readonly items: IteratorResult<T>[] = [];
  private failure: { error: unknown } | undefined;
  private waiting: { resolve(r: IteratorResult<T>): void; reject(e: unknown): void } | undefined;

  push(value: T): void {
    this.deliver({ value, done: false });
  }

  end(): void {
    this.deliver({ value: undefined, done: true });
  }

  fail(error: unknown): void {
    if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting.reject(error);
    } else this.failure = { error };
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    if (this.failure) return Promise.reject(this.failure.error);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.returned++;
    const done: IteratorResult<T> = { value: undefined, done: true };
    this.waiting?.resolve(done);
    this.waiting = undefined;
    return Promise.resolve(done);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private deliver(result: IteratorResult<T>): void {
    if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting.resolve(result);
    } else this.items.push(result);
  }
}

/** Lets every queued promise callback and I/O-free macrotask run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("mergeStreams", () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on("unhandledRejection", onUnhandled);
  });
  afterEach(() => {
    process.off("unhandledRejection", onUnhandled);
  });

  it("yields items from several sources in the order they become ready", async () => {
    const a = new Channel<string>();
    const b = new Channel<string>();
    const merged = mergeStreams([a, b]);

    const first = merged.next();
    b.push("b1");
    expect(await first).toEqual({ value: "b1", done: false });
    const second = merged.next();
    a.push("a1");
    expect(await second).toEqual({ value: "a1", done: false });
    const third = merged.next();
    a.push("a2");
    expect(await third).toEqual({ value: "a2", done: false });
    const fourth = merged.next();
    b.push("b2");
    expect(await fourth).toEqual({ value: "b2", done: false });
    a.end();
    b.end();
    expect(await merged.next()).toEqual({ value: undefined, done: true });
  });

  it("keeps going until every source has finished", async () => {
    const a = new Channel<number>();
    const b = new Channel<number>();
    const c = new Channel<number>();
    a.push(1);
    a.end();
    b.end();
    c.push(2);
    c.push(3);
    c.end();
    const out: number[] = [];
    for await (const item of mergeStreams([a, b, c])) out.push(item);
    expect(out.sort()).toEqual([1, 2, 3]);
  });

  it("works with real async generators and with a single source or none", async () => {
    async function* gen(prefix: string, count: number) {
      for (let i = 0; i < count; i++) {
        await settle();
        yield `${prefix}${i}`;
      }
    }
    const many: string[] = [];
    for await (const item of mergeStreams([gen("a", 3), gen("b", 2)])) many.push(item);
    expect(many.sort()).toEqual(["a0", "a1", "a2", "b0", "b1"]);

    const single: string[] = [];
    for await (const item of mergeStreams([gen("s", 2)])) single.push(item);
    expect(single).toEqual(["s0", "s1"]);

    const none: string[] = [];
    for await (const item of mergeStreams<string>([])) none.push(item);
    expect(none).toEqual([]);
  });

  it("rethrows a source's failure and closes the other sources", async () => {
    const a = new Channel<string>();
    const b = new Channel<string>();
    const c = new Channel<string>();
    const merged = mergeStreams([a, b, c]);
    const first = merged.next();
    a.push("a1");
    expect(await first).toEqual({ value: "a1", done: false });

    const failing = merged.next();
    const boom = new Error("boom");
    b.fail(boom);
    await expect(failing).rejects.toBe(boom);
    expect(a.returned).toBe(1);
    expect(c.returned).toBe(1);
    expect(await merged.next()).toEqual({ value: undefined, done: true });
  });

  it("runs the finally blocks of generator sources when one of them fails", async () => {
    const cleaned: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* slow() {
      try {
        yield "slow0";
        await gate;
        yield "slow1";
      } finally {
        cleaned.push("slow");
      }
    }
    // biome-ignore lint/correctness/useYield: a source that fails before its first part
    async function* failing() {
      try {
        await settle();
        throw new Error("source failed");
      } finally {
        cleaned.push("failing");
      }
    }
    const merged = mergeStreams([slow(), failing()]);
    const out: string[] = [];
    const consume = (async () => {
      for await (const item of merged) out.push(item);
    })();
    const result = expect(consume).rejects.toThrow("source failed");
    // The slow source is parked on its gate; closing it waits until it reaches its next yield.
    await settle();
    release();
    await result;
    expect(out).toEqual(["slow0"]);
    expect(cleaned.sort()).toEqual(["failing", "slow"]);
  });

  it("closes every source when the consumer stops early", async () => {
    const a = new Channel<string>();
    const b = new Channel<string>();
    a.push("a1");
    a.push("a2");
    for await (const item of mergeStreams([a, b])) {
      expect(item).toBe("a1");
      break;
    }
    expect(a.returned).toBe(1);
    expect(b.returned).toBe(1);
  });

  it("closes a single source when the consumer stops early", async () => {
    const a = new Channel<string>();
    a.push("a1");
    for await (const item of mergeStreams([a])) {
      expect(item).toBe("a1");
      break;
    }
    expect(a.returned).toBe(1);
  });

  it("leaves no unhandled rejection when a source fails while the consumer is busy", async () => {
    const a = new Channel<string>();
    const b = new Channel<string>();
    const merged = mergeStreams([a, b]);
    const first = merged.next();
    a.push("a1");
    expect(await first).toEqual({ value: "a1", done: false });
    // The consumer is busy with "a1"; meanwhile source a fails.
    a.fail(new Error("late failure"));
    await settle();
    await settle();
    await expect(merged.next()).rejects.toThrow("late failure");
    await settle();
    expect(unhandled).toEqual([]);
    expect(b.returned).toBe(1);
  });

  it("leaves no unhandled rejection when a source fails after the consumer stopped", async () => {
    const a = new Channel<string>();
    const b = new Channel<string>();
    a.push("a1");
    for await (const item of mergeStreams([a, b])) {
      expect(item).toBe("a1");
      break;
    }
    a.fail(new Error("after exit"));
    b.fail(new Error("after exit"));
    await settle();
    await settle();
    expect(unhandled).toEqual([]);
  });
});
