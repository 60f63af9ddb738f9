import { endianness } from "node:os";
import { DotKernel, KERNEL_ROWS, strideOf } from "./dot-kernel.js";
import { float32FromBytes } from "./vector-ingestion-repository.js";
import type { ChunkHit } from "./vector-store-types.js";

/**
 * One store's searchable vectors in memory, as of one vectors_version: rows in one contiguous
 * block of the dot-product kernel's memory, each scaled to unit length once when loaded, so that a
 * search is one SIMD dot product per row (no per-row objects, no decoding, no norms).
 */
export interface StoreVectors {
  readonly dims: number;
  readonly count: number;
  /** The rows (count used, each `kernel.stride` floats); a row of zeros stays zeros (it scores 0, as in the database scan). */
  readonly kernel: DotKernel;
  /** The chunk id of each row. */
  readonly ids: Float64Array;
  /** Each row's file, as an index into `files`. */
  readonly fileOf: Uint32Array;
  /** File id → its index in fileOf. */
  readonly files: ReadonlyMap<string, number>;
  /** What it takes in memory. */
  readonly bytes: number;
}

/** Memory one row of `dims` floats takes in StoreVectors. */
export function rowBytes(dims: number): number {
  return strideOf(dims) * 4 + 8 + 4;
}

/** Whether `rows` rows of `dims` floats can be held at all (one kernel memory holds at most 4 GiB). */
export function canHold(dims: number, rows: number): boolean {
  return DotKernel.fits(dims, rows);
}

const LITTLE_ENDIAN = endianness() === "LE";

/** Fills StoreVectors row by row, for at most `capacity` rows (the count taken before loading). */
export class StoreVectorsBuilder {
  private readonly kernel: DotKernel;
  private readonly ids: Float64Array;
  private readonly fileOf: Uint32Array;
  private readonly files = new Map<string, number>();
  private count = 0;

  constructor(
    private readonly dims: number,
    private readonly capacity: number,
  ) {
    this.kernel = new DotKernel(dims, capacity);
    this.ids = new Float64Array(capacity);
    this.fileOf = new Uint32Array(capacity);
  }

  /**
   * Adds a row from its stored little-endian float32 bytes; a vector of another size is skipped
   * (as the database scan skips it). False when the rows outnumber the capacity: the store changed
   * while it was read (that search scans the database instead).
   */
  add(chunkId: number, fileId: string, embedding: Uint8Array): boolean {
    const dims = this.dims;
    if (embedding.byteLength !== dims * 4) return true;
    if (this.count === this.capacity) return false;
    const offset = this.count * this.kernel.stride;
    const row = this.kernel.rows.subarray(offset, offset + dims);
    if (LITTLE_ENDIAN) {
      new Uint8Array(row.buffer, row.byteOffset, dims * 4).set(embedding);
    } else {
      row.set(float32FromBytes(embedding));
    }
    let norm = 0;
    for (let i = 0; i < dims; i++) {
      const x = row[i] as number;
      norm += x * x;
    }
    if (norm > 0 && norm !== 1) {
      const scale = 1 / Math.sqrt(norm);
      for (let i = 0; i < dims; i++) row[i] = (row[i] as number) * scale;
    }
    this.place(chunkId, fileId);
    return true;
  }

  /** Adds a row held by an older copy of the store (already unit length); false as add() is. */
  addFrom(chunkId: number, fileId: string, older: StoreVectors, olderRow: number): boolean {
    if (older.dims !== this.dims) return true;
    if (this.count === this.capacity) return false;
    const stride = this.kernel.stride;
    this.kernel.rows.set(
      older.kernel.rows.subarray(olderRow * stride, (olderRow + 1) * stride),
      this.count * stride,
    );
    this.place(chunkId, fileId);
    return true;
  }

  private place(chunkId: number, fileId: string): void {
    let file = this.files.get(fileId);
    if (file === undefined) {
      file = this.files.size;
      this.files.set(fileId, file);
    }
    this.ids[this.count] = chunkId;
    this.fileOf[this.count] = file;
    this.count++;
  }

  build(): StoreVectors {
    return {
      dims: this.dims,
      count: this.count,
      kernel: this.kernel,
      ids: this.ids,
      fileOf: this.fileOf,
      files: this.files,
      bytes: this.capacity * rowBytes(this.dims),
    };
  }
}

/**
 * The `limit` rows most similar to `query` by cosine (best first; equal scores by lower chunk id,
 * as in the database scan), among the rows of `fileIds` when given. The kernel's float32 sums pick
 * the candidates: every row within the sums' worst rounding error of the limit-th best, so none of
 * the true best can be missed; those are then scored again in doubles. A large store is scanned in
 * runs with a turn of the event loop between them, so other requests are not held up for long.
 */
export async function searchStoreVectors(
  store: StoreVectors,
  query: Float32Array,
  fileIds: readonly string[] | null,
  limit: number,
): Promise<ChunkHit[]> {
  const dims = store.dims;
  if (query.length !== dims || limit <= 0 || store.count === 0) return [];
  let allowed: Uint8Array | null = null;
  if (fileIds) {
    allowed = new Uint8Array(store.files.size);
    let any = false;
    for (const id of fileIds) {
      const file = store.files.get(id);
      if (file !== undefined) {
        allowed[file] = 1;
        any = true;
      }
    }
    if (!any) return [];
  }
  // The query at unit length: in doubles for the final scores, in floats (zero-padded) for the kernel.
  const { kernel, fileOf, count } = store;
  const q = new Float64Array(dims);
  let norm = 0;
  for (let i = 0; i < dims; i++) norm += (query[i] as number) * (query[i] as number);
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dims; i++) q[i] = (query[i] as number) * scale;
  const q32 = new Float32Array(kernel.stride);
  q32.set(q);

  const margin = roundingMargin(kernel.stride);
  const top = new FloatTop(Math.min(limit, count));
  let near: { row: number; score: number }[] = [];
  const rowsPerTurn = Math.max(KERNEL_ROWS, Math.floor(SLICE_FLOATS / kernel.stride));
  let sinceTurn = 0;
  let threshold = Number.NEGATIVE_INFINITY;
  for (let from = 0; from < count; from += KERNEL_ROWS) {
    if (sinceTurn >= rowsPerTurn) {
      await new Promise((resolve) => setImmediate(resolve));
      sinceTurn = 0;
    }
    const run = Math.min(KERNEL_ROWS, count - from);
    sinceTurn += run;
    const scores = kernel.compute(q32, from, run);
    for (let j = 0; j < run; j++) {
      const score = scores[j] as number;
      if (score < threshold) continue;
      const row = from + j;
      if (allowed !== null && allowed[fileOf[row] as number] === 0) continue;
      near.push({ row, score });
      top.offer(score);
      threshold = top.floor - margin;
    }
    // Rows that fell behind the rising floor go, so the list stays short.
    if (near.length > 4 * KERNEL_ROWS) near = near.filter((c) => c.score >= threshold);
  }
  const stride = kernel.stride;
  const hits = near
    .filter((c) => c.score >= threshold)
    .map(({ row }) => {
      let dot = 0;
      for (let i = 0, base = row * stride; i < dims; i++)
        dot += (kernel.rows[base + i] as number) * (q[i] as number);
      return { chunkId: store.ids[row] as number, score: dot };
    });
  return hits.sort((a, b) => b.score - a.score || a.chunkId - b.chunkId).slice(0, limit);
}

/** Dot products a search does before it lets other work run (about 10 ms of one core). */
const SLICE_FLOATS = 1 << 25;

/**
 * A bound on how far the kernel's float32 dot product of two unit vectors can be from the exact
 * one: each of its 16 running sums adds stride/16 products, then 4 more additions; every step
 * rounds by at most one unit in the last place (2^-24) of a value at most 1 in magnitude (the
 * products of two unit vectors sum in absolute value to at most 1). Doubled, and the query's own
 * rounding to floats added.
 */
function roundingMargin(stride: number): number {
  return 2 * (stride / 16 + 8) * 2 ** -24 + 4 * 2 ** -24;
}

/** The k best float32 scores so far; `floor` is the k-th (minus infinity until there are k). */
class FloatTop {
  private readonly scores: number[] = [];
  floor = Number.NEGATIVE_INFINITY;

  constructor(private readonly k: number) {}

  offer(score: number): void {
    if (score <= this.floor) return;
    const scores = this.scores;
    let i = scores.length;
    while (i > 0 && (scores[i - 1] as number) < score) i--;
    scores.splice(i, 0, score);
    if (scores.length > this.k) scores.pop();
    if (scores.length === this.k) this.floor = scores[scores.length - 1] as number;
  }
}
