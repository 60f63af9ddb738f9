/**
 * Pulls up to `depth` items from a source before the consumer asks for them, so a producer that
 * works off the main thread (a model decoding the next token) runs while the consumer handles
 * the previous item (encoding and writing it to a socket). Closing the result closes the source.
 */
export async function* readAhead<T>(source: AsyncIterable<T>, depth = 1): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const buffered: Promise<IteratorResult<T>>[] = [];
  const pull = () => {
    const next = iterator.next();
    // Marked handled: a failure is rethrown when the consumer reaches it, never left unhandled.
    next.catch(() => {});
    buffered.push(next);
  };
  let finished = false;
  try {
    pull();
    while (buffered.length > 0) {
      const result = await (buffered.shift() as Promise<IteratorResult<T>>);
      if (result.done) {
        finished = true;
        return;
      }
      // Ask for the next items before handing this one over.
      while (buffered.length < depth) pull();
      yield result.value;
    }
  } finally {
    if (!finished) {
      // Let pulls already in flight settle before closing the source (a generator cannot be
      // closed while it is running).
      await Promise.allSettled(buffered);
      await iterator.return?.();
    }
  }
}
