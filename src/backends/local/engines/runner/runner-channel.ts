import { abortable } from "../../../../core/abortable.js";
import type { ModelMetadata } from "../../engine.js";
import type { EngineProcess } from "../process-supervisor.js";
import {
  type ChildMessage,
  type ParentMessage,
  type RunnerLoadOptions,
  S_DONE,
  S_END,
  S_ERROR,
  type StreamMessage,
  type WireGeneration,
} from "./protocol.js";

/**
 * The server's end of one runner process's IPC channel: request/reply calls and generation
 * streams, matched by id. Everything pending fails the moment the process exits (the lease
 * signal), so nothing waits on a dead runner.
 */
export class RunnerChannel {
  private nextId = 1;
  private readonly calls = new Map<number, { resolve(value: unknown): void; reject(err: unknown): void }>();
  private readonly streams = new Map<number, RunnerStream>();
  private hello: { resolve(): void; promise: Promise<void> };
  private loaded: { resolve(meta: ModelMetadata): void; reject(err: unknown): void } | undefined;
  private failure: Error | undefined;

  constructor(readonly process: EngineProcess) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.hello = { resolve, promise };
    process.child.on("message", (message: ChildMessage) => this.onMessage(message));
    process.child.once("disconnect", () => this.fail(new Error("runner closed its channel")));
    if (process.signal.aborted) this.fail(process.signal.reason);
    else process.signal.addEventListener("abort", () => this.fail(process.signal.reason), { once: true });
  }

  /** Waits for the runner to listen, then has it load the model; resolves with its metadata. */
  async load(options: RunnerLoadOptions, signal: AbortSignal): Promise<ModelMetadata> {
    await abortable(this.hello.promise, signal);
    const loaded = new Promise<ModelMetadata>((resolve, reject) => {
      this.loaded = { resolve, reject };
    });
    this.send({ op: "load", options });
    return abortable(loaded, signal);
  }

  call(
    message:
      | { method: "tokenize"; text: string; special: boolean; continuation?: boolean }
      | { method: "detokenize"; tokens: readonly number[] }
      | { method: "embed"; inputs: readonly (readonly number[])[] }
      | { method: "status" },
    signal: AbortSignal,
  ): Promise<unknown> {
    const id = this.nextId++;
    const reply = new Promise<unknown>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
    });
    this.send({ op: "call", id, ...message });
    return abortable(reply, signal).finally(() => this.calls.delete(id));
  }

  /** Starts a generation on `slot`; its messages arrive through the returned stream. */
  generate(slot: number, req: WireGeneration): RunnerStream {
    const id = this.nextId++;
    const stream = new RunnerStream(() => {
      this.streams.delete(id);
      this.send({ op: "abort", id });
    });
    this.streams.set(id, stream);
    try {
      this.send({ op: "generate", id, slot, req });
    } catch (err) {
      this.streams.delete(id);
      stream.fail(err);
    }
    return stream;
  }

  private send(message: ParentMessage): void {
    if (this.failure) throw this.failure;
    const child = this.process.child;
    if (!child.connected) throw new Error("runner channel is closed");
    child.send(message);
  }

  private onMessage(message: ChildMessage): void {
    if (Array.isArray(message)) {
      const stream = this.streams.get(message[0]);
      if (!stream) return;
      const kind = message[1];
      if (kind === S_END || kind === S_DONE || kind === S_ERROR) this.streams.delete(message[0]);
      stream.push(message);
      return;
    }
    switch (message.op) {
      case "hello":
        this.hello.resolve();
        break;
      case "loaded":
        this.loaded?.resolve(message.meta);
        break;
      case "load-failed":
        this.loaded?.reject(new Error(`the runner could not load the model: ${message.message}`));
        break;
      case "result":
        this.calls.get(message.id)?.resolve(message.value);
        break;
      case "error":
        this.calls.get(message.id)?.reject(new Error(message.message));
        break;
    }
  }

  private fail(reason: unknown): void {
    if (this.failure) return;
    this.failure = reason instanceof Error ? reason : new Error(String(reason));
    this.loaded?.reject(this.failure);
    for (const call of this.calls.values()) call.reject(this.failure);
    this.calls.clear();
    for (const stream of this.streams.values()) stream.fail(this.failure);
    this.streams.clear();
  }
}

/**
 * One generation's messages, in order. `next()` waits for the next one; `close()` before the
 * end tells the runner to stop, and the stream reads as done from then on.
 */
export class RunnerStream {
  private readonly queue: StreamMessage[] = [];
  private waiter:
    | { resolve(message: StreamMessage | undefined): void; reject(err: unknown): void }
    | undefined;
  private error: unknown;
  private ended = false;
  private closed = false;

  constructor(private readonly onAbandon: () => void) {}

  push(message: StreamMessage): void {
    const kind = message[1];
    if (kind === S_END || kind === S_DONE || kind === S_ERROR) this.ended = true;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(message);
    } else this.queue.push(message);
  }

  fail(err: unknown): void {
    this.ended = true;
    this.error = err;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }

  /** The next message; undefined once the stream was closed here. */
  next(): Promise<StreamMessage | undefined> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Stops listening; a generation still running in the runner is aborted there. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.ended) {
      this.ended = true;
      try {
        this.onAbandon();
      } catch {
        // The channel is gone, and the generation with it.
      }
    }
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(undefined);
  }
}
