import { ServiceError } from "../core/errors.js";

/**
 * Exponential backoff with full jitter: a random wait up to base × 2^attempt (capped), so clients
 * retrying together spread out instead of arriving at the broken upstream in waves.
 */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/** The wait the upstream asked for (retry-after-ms / retry-after), if it asked. */
export function requestedDelayMs(err: unknown): number | undefined {
  if (!(err instanceof ServiceError)) return undefined;
  const ms = Number(err.hints["retry-after-ms"]);
  if (err.hints["retry-after-ms"] !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const seconds = Number(err.hints["retry-after"]);
  return err.hints["retry-after"] !== undefined && Number.isFinite(seconds) ? seconds * 1000 : undefined;
}

/** Errors that are the caller's own (a bad request): no other deployment would answer otherwise. */
export function isCallerFault(err: unknown): boolean {
  return (
    err instanceof ServiceError &&
    (err.kind === "invalid_request" ||
      err.kind === "too_large" ||
      err.kind === "unauthenticated" ||
      err.kind === "permission_denied" ||
      err.kind === "quota_exceeded")
  );
}

/**
 * Failures another attempt may get past: connection errors, 408, 409, 429, 5xx (x-should-retry).
 * A bug of our own is not one of them: it would fail again, and it says nothing about the upstream.
 */
export function isRetryable(err: unknown): boolean {
  return err instanceof ServiceError ? err.retryable : !isOwnBug(err);
}

/**
 * A programming error in this server (a TypeError from reading what is not there, and the like),
 * as opposed to a network or system error, which carries a code (ECONNRESET, UND_ERR_SOCKET) on
 * itself or its cause — fetch's TypeError("fetch failed") among them. Node's own argument errors
 * carry an ERR_ code: those are ours too.
 */
export function isOwnBug(err: unknown): boolean {
  if (
    !(
      err instanceof TypeError ||
      err instanceof RangeError ||
      err instanceof ReferenceError ||
      err instanceof SyntaxError
    )
  )
    return false;
  return !isSystemCode((err as { code?: unknown }).code) && !isSystemCode(codeOf(err.cause));
}

function codeOf(cause: unknown): unknown {
  return typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined;
}

function isSystemCode(code: unknown): boolean {
  return typeof code === "string" && !code.startsWith("ERR_");
}
