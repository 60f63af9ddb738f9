import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { type Gateway, manualTiming, startGateway } from "./gateway.js";
import { createMockOpenAiUpstream, type MockUpstream } from "./mock-openai-upstream.js";
import { expectRequestsConform } from "./upstream-request-schemas.js";

/** An OpenAI-compatible deployment on a mock upstream, as the router tests configure one. */
export const mockDeployment = (upstream: MockUpstream, fields: Record<string, unknown> = {}) => ({
  provider: "openai-compatible",
  base_url: `${upstream.url}/v1`,
  model: "m",
  timeout_ms: 5_000,
  ...fields,
});

/**
 * Two mock OpenAI-compatible upstreams for the describe block that calls this: listening for the
 * whole block, emptied of requests and faults before each test, and every request they received
 * checked against the spec after it.
 */
export function mockUpstreamPair(): [MockUpstream, MockUpstream] {
  const pair: [MockUpstream & { listen(): Promise<void> }, MockUpstream & { listen(): Promise<void> }] = [
    createMockOpenAiUpstream(),
    createMockOpenAiUpstream(),
  ];
  beforeAll(async () => {
    for (const upstream of pair) await upstream.listen();
  });
  afterAll(async () => {
    for (const upstream of pair) await upstream.close();
  });
  beforeEach(() => {
    for (const upstream of pair) {
      upstream.requests.length = 0;
      upstream.faults.length = 0;
    }
  });
  afterEach(() => expectRequestsConform(...pair));
  return pair;
}

/** A routed models test's gateway and its manual router clock. */
export interface RoutedGateways {
  /** This test's clock: a new one before each test; a test may replace it before start(). */
  timing: ReturnType<typeof manualTiming>;
  /** Starts this test's gateway over `models` (stopped after the test). */
  start(
    models: Record<string, unknown>[],
    router?: Record<string, unknown>,
    more?: Record<string, unknown>,
  ): Promise<Gateway>;
}

/** A gateway per test for the describe block that calls this, on a manual router clock. */
export function routedGateways(): RoutedGateways {
  let gateway: Gateway | undefined;
  const suite: RoutedGateways = {
    timing: manualTiming(),
    start: async (models, router = {}, more = {}) => {
      gateway = await startGateway({ routed_models: models, router, ...more }, suite.timing);
      return gateway;
    },
  };
  beforeEach(() => {
    suite.timing = manualTiming();
  });
  afterEach(async () => {
    await gateway?.stop();
    gateway = undefined;
  });
  return suite;
}
