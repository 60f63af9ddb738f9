import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { type Gateway, manualTiming, startGateway } from "./gateway.js";
import { expectRequestsConform, type SchemaCheckedUpstream } from "./upstream-request-schemas.js";

/** What the mock upstreams (OpenAI-compatible, Anthropic, Gemini) have in common. */
export interface MockProviderUpstream extends SchemaCheckedUpstream {
  url: string;
  requests: unknown[];
  faults: unknown[];
  close(): Promise<void>;
}

/** Filled in by the describe block's beforeAll: read them inside tests and hooks only. */
export interface MockProviderGateway<M extends MockProviderUpstream> {
  readonly upstream: M;
  readonly gateway: Gateway;
}

/**
 * For a describe block: a mock upstream, and a listening Switchboard whose `routed_models` are
 * `models(the mock's URL)`. Before each test the mock's record and faults are cleared; after each,
 * every request Switchboard sent it must have matched the provider's request schema. The router's
 * clock is manual (a retry's backoff returns at once) unless `timing` is "real" (for timeouts).
 */
export function useMockProviderGateway<M extends MockProviderUpstream>(options: {
  start: () => Promise<M>;
  models: (upstreamUrl: string) => Record<string, unknown>[];
  timing?: "manual" | "real";
}): MockProviderGateway<M> {
  const env = {} as { upstream: M; gateway: Gateway };
  beforeAll(async () => {
    env.upstream = await options.start();
    env.gateway = await startGateway(
      { routed_models: options.models(env.upstream.url) },
      options.timing === "real" ? undefined : manualTiming(),
    );
  });
  afterAll(async () => {
    await env.gateway?.stop();
    await env.upstream?.close();
  });
  beforeEach(() => {
    env.upstream.requests.length = 0;
    env.upstream.faults.length = 0;
    env.upstream.violations.length = 0;
  });
  afterEach(() => {
    expectRequestsConform(env.upstream);
  });
  return env;
}
