/**
 * An AbortController that also calls hooks registered with the controller itself when it aborts,
 * so that work a request starts can be told to stop without adding an 'abort' listener to the
 * request's signal (and removing it when the work is done).
 *
 * Why, measured on Node 20 (bench/RESULTS.md, session 7): a proxied request that added and removed
 * one 'abort' listener on its signal for its upstream exchange left over twice as much of itself
 * (the exchange, its headers) surviving the young generation's collections as one that did not
 * (c=1: ~1.8 KB against ~0.7–0.8 KB per request), and a scavenge copies and promotes all that
 * survives: it paused ~9 ms instead of 3–5.
 *
 * The hooks run after the signal's own listeners, with the signal already aborted. Every way a
 * request's signal aborts goes through its controller's abort() (the client leaving, shutdown, the
 * router's deadline), so no hook is missed.
 */
export class HookedAbortController extends AbortController {
  private hooks: (() => void)[] | undefined;

  override abort(reason?: unknown): void {
    super.abort(reason);
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

  /**
   * Calls `hook` once when the controller aborts; returns what unregisters it. As with a listener,
   * a hook registered once the signal aborted is never called: the caller checks first.
   */
  onAbort(hook: () => void): () => void {
    if (this.signal.aborted) return noop;
    this.hooks ??= [];
    this.hooks.push(hook);
    return () => {
      const at = this.hooks?.indexOf(hook) ?? -1;
      if (at >= 0) this.hooks?.splice(at, 1);
    };
  }
}

const noop = (): void => {};

/**
 * Calls `hook` once when `signal` aborts; returns what unregisters it. Through the controller's
 * hooks where `owner` is the signal's HookedAbortController, else as a listener of the signal.
 * Either way nothing is called for a signal that aborted already: the caller checks first.
 */
export function whenAborted(signal: AbortSignal, hook: () => void, owner?: AbortController): () => void {
  if (owner instanceof HookedAbortController && owner.signal === signal) return owner.onAbort(hook);
  signal.addEventListener("abort", hook, { once: true });
  return () => signal.removeEventListener("abort", hook);
}
