/**
 * Polls `check` until it returns something other than undefined or false, and resolves with that;
 * fails naming `what` after `ms`. Tests poll because what they wait for (a process's state, a log
 * line, a metric, a database row) has no event to await.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 10_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Whether `promise` has settled once the work already queued (microtasks and two turns of the
 * event loop) has run; undefined counts as settled (a call that did not have to wait).
 */
export async function settledSoon(promise: Promise<unknown> | undefined): Promise<boolean> {
  if (promise === undefined) return true;
  let done = false;
  void promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}
