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
