import { ServiceError } from "../../core/errors.js";

/**
 * Upstream failures in our terms. The router reads `x-should-retry` to decide whether another
 * attempt may help, and the client sees the same header: a 4xx that is the caller's fault stays a
 * 4xx with the upstream's message; the upstream's own trouble becomes 502, 503 or 504.
 */

const RETRY = { "x-should-retry": "true" } as const;
const NO_RETRY = { "x-should-retry": "false" } as const;

/** An upstream answered with an error status; `message` is what its body said, if anything. */
export function upstreamStatusError(
  status: number,
  message: string | undefined,
  retryAfterMs: number | undefined,
): ServiceError {
  const said = message ? `: ${message}` : ".";
  const retryHints =
    retryAfterMs === undefined
      ? RETRY
      : {
          ...RETRY,
          "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
          "retry-after-ms": String(retryAfterMs),
        };
  if (status === 429) {
    return new ServiceError("rate_limited", `The upstream provider is rate limiting requests${said}`, {
      code: "upstream_rate_limited",
      hints: retryHints,
    });
  }
  if (status === 408 || status === 504) {
    return new ServiceError("gateway_timeout", `The upstream provider timed out${said}`, {
      code: "upstream_timeout",
      hints: retryHints,
    });
  }
  if (status === 409) {
    return new ServiceError("conflict", `The upstream provider reported a conflict${said}`, {
      code: "upstream_conflict",
      hints: retryHints,
    });
  }
  // Our credentials or our configuration of the upstream, not the caller's request: telling the
  // caller 401 or 404 would point at their key or their model name.
  if (status === 401 || status === 403 || status === 404) {
    return new ServiceError(
      "bad_gateway",
      `The upstream provider refused the server's request (status ${status}); the deployment is misconfigured.`,
      { code: "upstream_rejected", hints: NO_RETRY },
    );
  }
  if (status === 413) {
    return new ServiceError("too_large", `The upstream provider refused the request as too large${said}`, {
      code: "request_too_large",
      hints: NO_RETRY,
    });
  }
  if (status >= 400 && status < 500) {
    return new ServiceError("invalid_request", `The upstream provider refused the request${said}`, {
      code: "upstream_invalid_request",
      hints: NO_RETRY,
    });
  }
  if (status === 503 || status === 529) {
    return new ServiceError("unavailable", `The upstream provider is unavailable${said}`, {
      code: "upstream_unavailable",
      hints: retryHints,
    });
  }
  return new ServiceError("bad_gateway", `The upstream provider failed (status ${status})${said}`, {
    code: "upstream_error",
    hints: retryHints,
  });
}

/** The upstream could not be reached, hung, or broke off; never the caller's fault. */
export function upstreamTransportError(err: unknown): ServiceError {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_CONNECT_TIMEOUT") {
    return new ServiceError("gateway_timeout", "The upstream provider did not answer in time.", {
      code: "upstream_timeout",
      hints: RETRY,
      cause: err,
    });
  }
  if (code === "UND_ERR_BODY_TIMEOUT") {
    return new ServiceError("gateway_timeout", "The upstream provider stopped sending mid-answer.", {
      code: "upstream_timeout",
      hints: RETRY,
      cause: err,
    });
  }
  return new ServiceError("bad_gateway", "The connection to the upstream provider failed.", {
    code: "upstream_connection_error",
    hints: RETRY,
    cause: err,
  });
}

/** The upstream answered, but with something that is not the protocol. */
export function upstreamProtocolError(what: string): ServiceError {
  return new ServiceError("bad_gateway", `The upstream provider sent ${what}.`, {
    code: "upstream_protocol_error",
    hints: RETRY,
  });
}

/** An error the upstream reported inside a stream that had begun. */
export function upstreamStreamError(message: string | undefined): ServiceError {
  return new ServiceError(
    "bad_gateway",
    `The upstream provider reported an error mid-answer${message ? `: ${message}` : "."}`,
    { code: "upstream_error", hints: RETRY },
  );
}

/** retry-after-ms (milliseconds) or retry-after (seconds or an HTTP date), as milliseconds. */
export function retryAfterMs(
  header: (name: string) => string | undefined,
  now: () => number = Date.now,
): number | undefined {
  const ms = Number(header("retry-after-ms"));
  if (header("retry-after-ms") !== undefined && Number.isFinite(ms) && ms >= 0) return Math.ceil(ms);
  const value = header("retry-after");
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (value.trim() !== "" && Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now());
}
