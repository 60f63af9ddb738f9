/**
 * Interleaves several async iterables, yielding each item as soon as it is ready. At most
 * `concurrency` sources are pulled at a time; the next source starts when one finishes (async
 * generators do no work before their first pull, so later choices wait their turn without
 * holding a place in any queue). If one source fails, the running ones are closed and the error
 * is rethrown. Used to run n choices in parallel.
 */
export async function* mergeStreams<T>(
  sources: AsyncIterable<T>[],
  concurrency = sources.length,
): AsyncGenerator<T> {
  if (sources.length === 1) {
    yield* sources[0] as AsyncIterable<T>;
    return;
  }
  const iterators: AsyncIterator<T>[] = [];
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<T> }>>();
  const pull = (index: number) => {
    const iterator = iterators[index] as AsyncIterator<T>;
    const promise = iterator.next().then((result) => ({ index, result }));
    // While the consumer holds a yielded item nobody awaits this promise; mark its rejection as
    // handled so it cannot surface as an unhandled rejection. The next race still sees it.
    promise.catch(() => {});
    pending.set(index, promise);
  };
  const startNext = () => {
    const index = iterators.length;
    if (index >= sources.length) return;
    iterators.push((sources[index] as AsyncIterable<T>)[Symbol.asyncIterator]());
    pull(index);
  };
  for (let i = 0; i < Math.max(1, concurrency) && i < sources.length; i++) startNext();
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(index);
        startNext();
        continue;
      }
      pull(index);
      yield result.value;
    }
  } finally {
    // Close whatever is still running (early exit by the consumer, or a failure in one source).
    await Promise.allSettled([...pending.keys()].map((i) => (iterators[i] as AsyncIterator<T>).return?.()));
  }
}
