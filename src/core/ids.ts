import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A random base62 string; 24 characters carry ~143 bits. */
export function randomId(length = 24): string {
  const bytes = randomBytes(length);
  let out = "";
  // 62 does not divide 256 evenly; the slight bias is irrelevant for opaque ids.
  for (const byte of bytes) out += ALPHABET[byte % 62];
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
