import { describe, expect, it } from "vitest";
import { formatResetDuration, rateLimitHeaders, retryHeaders } from "../../src/limits/rate-limit-headers.js";

describe("rate-limit headers", () => {
  it("writes reset durations the way OpenAI does", () => {
    expect(formatResetDuration(20)).toBe("20ms");
    expect(formatResetDuration(999)).toBe("999ms");
    expect(formatResetDuration(1000)).toBe("1s");
    expect(formatResetDuration(8640)).toBe("8.64s");
    expect(formatResetDuration(59_500)).toBe("59.5s");
    expect(formatResetDuration(1001)).toBe("1.001s");
    expect(formatResetDuration(60_000)).toBe("1m0s");
    expect(formatResetDuration(360_000)).toBe("6m0s");
    expect(formatResetDuration(90_250)).toBe("1m30.25s");
    expect(formatResetDuration(3_723_000)).toBe("1h2m3s");
    expect(formatResetDuration(3_600_000)).toBe("1h0m0s");
  });

  it("rounds a partial millisecond up so a pending reset never reads as zero", () => {
    expect(formatResetDuration(0.2)).toBe("1ms");
    expect(formatResetDuration(1000.4)).toBe("1.001s");
    expect(formatResetDuration(0)).toBe("0s");
    expect(formatResetDuration(-5)).toBe("0s");
    expect(formatResetDuration(Number.NaN)).toBe("0s");
  });

  it("reports request and token limits", () => {
    expect(
      rateLimitHeaders({
        requests: { limit: 60, remaining: 59, resetMs: 1000 },
        tokens: { limit: 150_000, remaining: 149_984.7, resetMs: 360_000 },
      }),
    ).toEqual({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "59",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-limit-tokens": "150000",
      "x-ratelimit-remaining-tokens": "149984",
      "x-ratelimit-reset-tokens": "6m0s",
    });
  });

  it("reports only the limits that apply, never a negative remainder", () => {
    expect(rateLimitHeaders({ tokens: { limit: 10, remaining: -3, resetMs: 20 } })).toEqual({
      "x-ratelimit-limit-tokens": "10",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "20ms",
    });
    expect(rateLimitHeaders({})).toEqual({});
  });

  it("tells a refused client when to retry, in whole seconds and in milliseconds", () => {
    expect(retryHeaders(12_000)).toEqual({ "retry-after": "12", "retry-after-ms": "12000" });
    expect(retryHeaders(1_500.2)).toEqual({ "retry-after": "2", "retry-after-ms": "1501" });
    expect(retryHeaders(20)).toEqual({ "retry-after": "1", "retry-after-ms": "20" });
    expect(retryHeaders(0)).toEqual({ "retry-after": "1", "retry-after-ms": "0" });
  });

  it("gives no retry headers when waiting can never help", () => {
    expect(retryHeaders(Number.POSITIVE_INFINITY)).toEqual({});
  });
});
