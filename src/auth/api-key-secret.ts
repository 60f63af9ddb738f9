import { hash, timingSafeEqual } from "node:crypto";
import { randomId } from "../core/ids.js";

export const KEY_PREFIX = "sk-sb-";

/** A new secret: 48 base62 characters (~285 bits) after a recognisable prefix. */
export function generateKeySecret(): string {
  return `${KEY_PREFIX}${randomId(48)}`;
}

/**
 * Keys are random and long, so a fast hash is safe at rest (no dictionary to attack). One-shot
 * crypto.hash (Node 20.12+): half the cost of a Hash object, and every request hashes its key.
 */
export function hashKeySecret(secret: string): string {
  return hash("sha256", secret, "hex");
}

/** What lists show so a person can recognise a key: its start and its last four characters. */
export function keyHint(secret: string): string {
  return `${secret.slice(0, KEY_PREFIX.length + 4)}…${secret.slice(-4)}`;
}

/** Constant-time comparison of two hex digests of equal length. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** The bearer secret from `Authorization: Bearer …` (or `api-key`, as Azure-style clients send). */
export function presentedSecret(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === "string") {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return match?.[1];
  }
  const apiKey = headers["api-key"];
  return typeof apiKey === "string" && apiKey.length > 0 ? apiKey : undefined;
}
