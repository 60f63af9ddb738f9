import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Random bytes drawn in blocks: one syscall per block instead of one per id (ids are minted per request). */
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let poolAt = 0;

/** The alphabet's character codes, and where an id's characters are written before they become one string. */
const ALPHABET_CODES = Buffer.from(ALPHABET, "latin1");
const scratch = Buffer.allocUnsafe(POOL_BYTES);

/** A random base62 string; 24 characters carry ~143 bits. */
export function randomId(length = 24): string {
  if (length > POOL_BYTES) throw new Error("id too long");
  if (poolAt + length > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  // 62 does not divide 256 evenly; the slight bias is irrelevant for opaque ids.
  for (let i = 0; i < length; i++) scratch[i] = ALPHABET_CODES[(pool[poolAt + i] as number) % 62] as number;
  poolAt += length;
  // One string: appending a character at a time made a string per character (~1 KB an id).
  return scratch.toString("latin1", 0, length);
}

/** Base62 digits of a millisecond time, fixed width: 8 digits reach the year 8000. */
const TIME_DIGITS = 8;

/**
 * An id that sorts by `at` (ms since the epoch), then random: `TIME_DIGITS` base62 digits of the
 * time (the alphabet is in ASCII order, so text order is time order) and `randomLength` random
 * characters. Rows keyed by it are appended at the end of their primary-key index instead of
 * landing on a random page of it, which every insert into a large table otherwise rewrites.
 */
export function timeOrderedId(at: number, randomLength = 12): string {
  let time = Math.max(0, Math.floor(at));
  let digits = "";
  for (let i = 0; i < TIME_DIGITS; i++) {
    digits = ALPHABET[time % 62] + digits;
    time = Math.floor(time / 62);
  }
  return digits + randomId(randomLength);
}

export interface IdGenerator {
  chatCompletion(): string;
  response(): string;
  completion(): string;
  request(): string;
}

export const defaultIds: IdGenerator = {
  chatCompletion: () => `chatcmpl-${randomId()}`,
  response: () => `resp_${randomId()}`,
  completion: () => `cmpl-${randomId()}`,
  request: () => `req_${randomId()}`,
};

/** Ids of stored objects: prefix + 24 base62 characters (`file-…`, `batch_…`). */
export const objectIds = {
  file: () => `file-${randomId()}`,
  upload: () => `upload_${randomId()}`,
  uploadPart: () => `part_${randomId()}`,
  batch: () => `batch_${randomId()}`,
  batchRequest: () => `batch_req_${randomId()}`,
  blob: () => `blob_${randomId()}`,
};

/** Whether `id` could be one of ours with `prefix`; anything else is a 404 without a lookup. */
export function isObjectId(id: string, prefix: string): boolean {
  return id.startsWith(prefix) && /^[A-Za-z0-9]{1,64}$/.test(id.slice(prefix.length));
}
