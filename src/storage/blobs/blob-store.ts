import { createHash } from "node:crypto";
import { ServiceError } from "../../core/errors.js";

/**
 * Where file bytes live. Keys are minted by us (never a client's file name). `put` consumes a
 * stream without holding it whole; a write that fails or passes its limit leaves nothing behind,
 * and a `put` that resolved survives a crash.
 */
export interface BlobStore {
  readonly kind: "filesystem" | "database";
  put(key: string, source: AsyncIterable<Uint8Array>, limit: BlobLimit): Promise<BlobWritten>;
  /** The bytes, in order, in chunks. */
  get(key: string): AsyncIterable<Buffer>;
  /** Removes the bytes; a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Removes what writes cut short by a crash left behind (temporary files) that was last written
   * before `before` (unix ms); returns how many. Writes still going on are newer than that.
   */
  removeUnfinished(before: number): Promise<number>;
  /**
   * Keys of blobs last written before `before` (unix ms), for the sweeper to match against the
   * files and upload parts that refer to them: one nothing refers to is a crash's leftover.
   */
  keysWrittenBefore(before: number): AsyncIterable<string>;
}

export interface BlobLimit {
  maxBytes: number;
  /** What a caller is told when the stream passes maxBytes. */
  message?: string;
}

export interface BlobWritten {
  bytes: number;
  md5: string;
}

export function tooLarge(limit: BlobLimit): ServiceError {
  return new ServiceError(
    "too_large",
    limit.message ?? `The file is larger than the limit of ${limit.maxBytes} bytes.`,
    { code: "file_too_large" },
  );
}

/** Counts, hashes and bounds a byte stream on its way to a store. */
export class ByteMeter {
  bytes = 0;
  private readonly hash = createHash("md5");

  constructor(private readonly limit: BlobLimit) {}

  add(chunk: Uint8Array): void {
    this.bytes += chunk.byteLength;
    if (this.bytes > this.limit.maxBytes) throw tooLarge(this.limit);
    this.hash.update(chunk);
  }

  result(): BlobWritten {
    return { bytes: this.bytes, md5: this.hash.digest("hex") };
  }
}

const BLOB_KEY = /^[A-Za-z0-9_-]{8,64}$/;

/** Keys are ours; anything else reaching a store is a bug, never a path to follow. */
export function assertBlobKey(key: string): void {
  if (!isBlobKey(key)) throw new Error("invalid blob key");
}

export function isBlobKey(key: string): boolean {
  return BLOB_KEY.test(key);
}
