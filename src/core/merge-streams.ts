/**
 * Interleaves several async iterables, yielding each item as soon as it is ready. If one source
 * fails, the others are closed and the error is rethrown. Used to run n choices in parallel.
 */
export async function* mergeStreams<T>(sources: AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  if (iterators.length === 1) {
    yield* { [Symbol.asyncIterator]: () => iterators[0] as AsyncIterator<T> };
    return;
  }
  const pending = new Map<number, Promise<{ index: number; result: IteratorResult<T> }>>();
  const pull = (index: number) => {
    const iterator = iterators[index] as AsyncIterator<T>;
    const promise = iterator.next().then((result) => ({ index, result }));
    // While the consumer holds a yielded item nobody awaits this promise; mark its rejection as
    // handled so it cannot surface as an unhandled rejection. The next race still sees it.
    promise.catch(() => {});
    pending.set(index, promise);
  };
  for (let i = 0; i < iterators.length; i++) pull(i);
  try {
    while (pending.size > 0) {
      const { index, result } = await Promise.race(pending.values());
      if (result.done) {
        pending.delete(index);
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
