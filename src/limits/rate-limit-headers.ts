/**
 * OpenAI's rate-limit response headers. The reset headers are durations written the way Go
 * prints a `time.Duration` ("20ms", "1s", "59.5s", "6m0s", "1h2m3s"), which is what OpenAI
 * sends and what its SDKs and client-side retry libraries parse.
 */

export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Milliseconds until the limit is back to its initial state. */
  resetMs: number;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * A duration in OpenAI's header style, to the millisecond (rounded up, so a non-zero wait never
 * reads as "0s"). Zero, negative and non-finite inputs give "0s".
 */
export function formatResetDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return "0s";
  const total = Math.ceil(ms);
  if (total < SECOND) return `${total}ms`;
  const hours = Math.floor(total / HOUR);
  const minutes = Math.floor((total % HOUR) / MINUTE);
  const millis = total % MINUTE;
  const wholeSeconds = Math.floor(millis / SECOND);
  const fraction = millis % SECOND;
  // Build the fraction from integers: 8640 ms must print "8.64s", never "8.640000000000001s".
  const seconds =
    fraction === 0
      ? `${wholeSeconds}`
      : `${wholeSeconds}.${`${fraction}`.padStart(3, "0").replace(/0+$/, "")}`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

function count(value: number): string {
  return `${Math.max(0, Math.floor(value))}`;
}

/** `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for whichever limits apply. */
export function rateLimitHeaders(state: {
  requests?: RateLimitState;
  tokens?: RateLimitState;
}): Record<string, string> {
  const headers: Record<string, string> = {};
  if (state.requests) {
    headers["x-ratelimit-limit-requests"] = count(state.requests.limit);
    headers["x-ratelimit-remaining-requests"] = count(state.requests.remaining);
    headers["x-ratelimit-reset-requests"] = formatResetDuration(state.requests.resetMs);
  }
  if (state.tokens) {
    headers["x-ratelimit-limit-tokens"] = count(state.tokens.limit);
    headers["x-ratelimit-remaining-tokens"] = count(state.tokens.remaining);
    headers["x-ratelimit-reset-tokens"] = formatResetDuration(state.tokens.resetMs);
  }
  return headers;
}

/**
 * `retry-after` (whole seconds, rounded up, at least 1) and `retry-after-ms` for a 429. A
 * non-finite wait (a request larger than the limit can ever allow) gives no headers: no amount
 * of waiting helps, so clients must not be told to retry.
 */
export function retryHeaders(retryAfterMs: number): Record<string, string> {
  if (!Number.isFinite(retryAfterMs)) return {};
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return {
    "retry-after": `${Math.max(1, Math.ceil(ms / SECOND))}`,
    "retry-after-ms": `${ms}`,
  };
}
