/**
 * What tells the work a caller started to stop: the caller went away, the server stopped waiting,
 * the router's deadline passed. It reads as an AbortSignal does (`aborted`, `reason`) and takes
 * hooks instead of 'abort' listeners; `signal` gives a real AbortSignal to an API that takes one.
 *
 * Why not an AbortSignal throughout, measured on Node 20 (bench/RESULTS.md, sessions 6–8): making
 * one costs ~4 µs (Node builds an EventTarget, then changes its prototype, so every signal gets a
 * hidden class of its own), ~0.5 KB of each survives the young generation's collections, and an
 * 'abort' listener added and removed again kept ~1.5 KB more of a proxied request alive past them.
 * A request relayed to an upstream needs none of that: it only asks whether it was cut, and is
 * told once when it is.
 */
export interface Cancellation {
  readonly aborted: boolean;
  /** Why it was cut; undefined until it is. */
  readonly reason: unknown;
  /**
   * Calls `hook` once when it is cut; returns what unregisters it. As with a listener, a hook
   * registered once it is cut is never called: the caller checks `aborted` first.
   */
  onAbort(hook: () => void): () => void;
  /** An AbortSignal that aborts with it, for an API that takes one (a local engine, a timer). */
  readonly signal: AbortSignal;
}

/** A Cancellation of one caller's own, cut by `abort()`. Makes an AbortSignal only when asked for one. */
export class CancelSource implements Cancellation {
  private cut = false;
  private why: unknown;
  private hooks: (() => void)[] | undefined;
  private controller: AbortController | undefined;

  get aborted(): boolean {
    return this.cut;
  }

  get reason(): unknown {
    return this.why;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.cut) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /** Cuts it, once: the signal's listeners (if a signal was made) run first, then the hooks. */
  abort(reason: unknown = new DOMException("This operation was aborted", "AbortError")): void {
    if (this.cut) return;
    this.cut = true;
    this.why = reason;
    this.controller?.abort(reason);
    const hooks = this.hooks;
    this.hooks = undefined;
    if (!hooks) return;
    for (const hook of hooks) {
      try {
        hook();
      } catch (err) {
        // As a throwing 'abort' listener is: reported, without keeping the other hooks from running.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  onAbort(hook: () => void): () => void {
    if (this.cut) return noop;
    this.hooks ??= [];
    this.hooks.push(hook);
    return () => {
      const at = this.hooks?.indexOf(hook) ?? -1;
      if (at >= 0) this.hooks?.splice(at, 1);
    };
  }
}

/** An AbortSignal (a worker's, shared by many calls) as a Cancellation: hooks become listeners. */
class SignalCancellation implements Cancellation {
  constructor(readonly signal: AbortSignal) {}

  get aborted(): boolean {
    return this.signal.aborted;
  }

  get reason(): unknown {
    return this.signal.aborted ? this.signal.reason : undefined;
  }

  onAbort(hook: () => void): () => void {
    const signal = this.signal;
    if (signal.aborted) return noop;
    signal.addEventListener("abort", hook, { once: true });
    return () => signal.removeEventListener("abort", hook);
  }
}

/** What a caller hands on: its own Cancellation, or an AbortSignal. */
export type CancelInput = Cancellation | AbortSignal;

/** `input` as a Cancellation: itself, or its signal wrapped. */
export function cancellationOf(input: CancelInput): Cancellation {
  return input instanceof AbortSignal ? new SignalCancellation(input) : input;
}

const noop = (): void => {};
