/**
 * Interactive requests in flight per local deployment, for batch work that gives way to them
 * entirely (batches.preempt): a batch line stops the moment an interactive request starts on its
 * model and waits until the model has none. Counted in this process, where the engine is.
 */
export class InteractiveTraffic {
  private readonly inFlight = new Map<string, number>();
  private readonly listeners = new Set<(deploymentId: string) => void>();
  private readonly idleWaiters = new Map<string, Set<() => void>>();

  /** An interactive request was admitted to `deploymentId`; listeners hear of it at once. */
  started(deploymentId: string): void {
    this.inFlight.set(deploymentId, (this.inFlight.get(deploymentId) ?? 0) + 1);
    for (const listener of this.listeners) listener(deploymentId);
  }

  ended(deploymentId: string): void {
    const left = (this.inFlight.get(deploymentId) ?? 1) - 1;
    if (left > 0) {
      this.inFlight.set(deploymentId, left);
      return;
    }
    this.inFlight.delete(deploymentId);
    const waiters = this.idleWaiters.get(deploymentId);
    this.idleWaiters.delete(deploymentId);
    for (const resolve of waiters ?? []) resolve();
  }

  isBusy(deploymentId: string): boolean {
    return this.inFlight.has(deploymentId);
  }

  /** Resolves once `deploymentId` has no interactive request in flight (or `signal` aborts). */
  whenIdle(deploymentId: string, signal: AbortSignal): Promise<void> {
    if (!this.isBusy(deploymentId) || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.idleWaiters.get(deploymentId)?.delete(done);
        resolve();
      };
      signal.addEventListener("abort", done, { once: true });
      let waiters = this.idleWaiters.get(deploymentId);
      if (!waiters) {
        waiters = new Set();
        this.idleWaiters.set(deploymentId, waiters);
      }
      waiters.add(done);
    });
  }

  /** Calls `listener` with the deployment each time an interactive request starts; returns the unsubscribe. */
  subscribe(listener: (deploymentId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * Why a batch line's generation was stopped: an interactive request took its model. The line runs
 * again once the model is free, and what the stopped generation consumed is not charged.
 */
export class BatchPreempted extends Error {
  override name = "BatchPreempted";
  constructor() {
    super("stopped for an interactive request");
  }
}
