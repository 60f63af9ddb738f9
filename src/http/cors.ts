import type { FastifyCorsOptions } from "@fastify/cors";

/** Request headers the official OpenAI SDKs send from a browser, matched case-insensitively. */
const SDK_REQUEST_HEADER =
  /^(authorization|content-type|x-request-id|idempotency-key|openai-[a-z0-9-]+|x-stainless-[a-z0-9-]+)$/;

/** Response headers the SDKs read: without this list a browser hides them from the page. */
const EXPOSED_HEADERS = [
  "x-request-id",
  "openai-processing-ms",
  "x-ratelimit-limit-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens",
  "retry-after",
  "retry-after-ms",
  "x-should-retry",
];

const METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE"];

/**
 * CORS for the operator's listed origins only. Other origins get no CORS headers, and their
 * preflights fall through to the router's 405. A preflight is granted only the headers the SDKs send; a
 * page's simple POSTs (text/plain, form bodies) still meet the JSON-only content-type check
 * before any work.
 */
export function corsOptions(origins: readonly string[]): FastifyCorsOptions {
  const listed = new Set(origins);
  return {
    hook: "onRequest",
    // A preflight without Access-Control-Request-Method is answered, not refused with a text/plain 400.
    strictPreflight: false,
    delegator: (request, done) => {
      const origin = request.headers.origin;
      if (origin === undefined || !listed.has(origin)) return done(null, { origin: false });
      done(null, {
        origin,
        methods: METHODS,
        allowedHeaders: grantedHeaders(request.headers["access-control-request-headers"]),
        exposedHeaders: EXPOSED_HEADERS,
        maxAge: 600,
        strictPreflight: false,
      });
    },
  };
}

function grantedHeaders(requested: string | string[] | undefined): string[] {
  if (requested === undefined) return [];
  const names = Array.isArray(requested) ? requested.join(",") : requested;
  return names
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => SDK_REQUEST_HEADER.test(name));
}
