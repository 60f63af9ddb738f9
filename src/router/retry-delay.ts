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

/** Failures another attempt may get past: connection errors, 408, 409, 429, 5xx (x-should-retry). */
export function isRetryable(err: unknown): boolean {
  return err instanceof ServiceError ? err.retryable : true;
}
