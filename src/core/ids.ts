import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Random bytes drawn in blocks: one syscall per block instead of one per id (ids are minted per request). */
const POOL_BYTES = 4096;
let pool = randomBytes(POOL_BYTES);
let poolAt = 0;

/** A random base62 string; 24 characters carry ~143 bits. */
export function randomId(length = 24): string {
  if (length > POOL_BYTES) throw new Error("id too long");
  if (poolAt + length > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  let out = "";
  // 62 does not divide 256 evenly; the slight bias is irrelevant for opaque ids.
  for (let i = 0; i < length; i++) out += ALPHABET[(pool[poolAt + i] as number) % 62];
  poolAt += length;
  return out;
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
