import type { GenerationPart } from "./generation.js";

/**
 * An answer's parts that can also be read to the end in one call, for a caller that takes the
 * answer whole (a response body, a batch line). Read one by one, each part costs a promise at
 * every layer it passes (backend, router, service, encoder); drained, an answer costs a few.
 */
export interface DrainableParts extends AsyncIterator<GenerationPart> {
  /**
   * Every part not read yet, to the answer's end, with the errors next() would throw; `first` is
   * told of the first part as it arrives (before the rest are read). Instead of next(), not
   * beside it: the iterator is done afterwards.
   */
  drain(first?: (part: GenerationPart) => void): Promise<GenerationPart[]>;
}

/**
 * Every part left of `parts`, to the end: in one call where the iterator can (DrainableParts),
 * one next() at a time where it cannot. As for-await, an iterator that threw is not asked to
 * return; `first` is told of the first part as it arrives.
 */
export async function drainParts(
  parts: AsyncIterator<GenerationPart>,
  first?: (part: GenerationPart) => void,
): Promise<GenerationPart[]> {
  if (isDrainable(parts)) return parts.drain(first);
  const all: GenerationPart[] = [];
  let next = await parts.next();
  if (!next.done) first?.(next.value);
  for (; !next.done; next = await parts.next()) all.push(next.value);
  return all;
}

function isDrainable(parts: AsyncIterator<GenerationPart>): parts is DrainableParts {
  return typeof (parts as Partial<DrainableParts>).drain === "function";
}
