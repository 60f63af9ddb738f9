import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, manualTiming, startGateway } from "./helpers/gateway.js";
import { type MockUpstream, startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";
import { expectRequestsConform } from "./helpers/upstream-request-schemas.js";

/**
 * /admin/models shows operators each routed deployment's circuit as the router sees it: open once
 * a deployment failed breaker_failures times in a row, closed again after the half-open probe
 * succeeds. Only an admin key reads it.
 */

const ADMIN_KEY = "sk-sb-admin-models-health-test-01";

interface DeploymentHealth {
  name: string;
  provider: string;
  circuit: string;
  consecutiveFailures: number;
  attempts: { succeeded: number; failed: number };
}

describe("/admin/models and a deployment's circuit", () => {
  let flaky: MockUpstream;
  let standby: MockUpstream;
  let gateway: Gateway;
  let client: OpenAI;
  const timing = manualTiming();

  beforeAll(async () => {
    flaky = await startMockOpenAiUpstream();
    standby = await startMockOpenAiUpstream();
    const deployment = (upstream: MockUpstream, fields: Record<string, unknown>) => ({
      provider: "openai-compatible",
      base_url: `${upstream.url}/v1`,
      model: "m",
      max_retries: 0,
      ...fields,
    });
    gateway = await startGateway(
      {
        admin_key: ADMIN_KEY,
        routed_models: [
          {
            id: "routed",
            deployments: [
              deployment(flaky, { name: "flaky" }),
              deployment(standby, { name: "standby", weight: 0 }),
            ],
          },
        ],
        router: { breaker_failures: 2, breaker_cooldown_ms: 10_000 },
      },
      timing,
    );
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: ADMIN_KEY, maxRetries: 0 });
  });
  afterAll(async () => {
    await gateway?.stop();
    expectRequestsConform(flaky, standby);
    await flaky?.close();
    await standby?.close();
  });

  const adminModels = (key?: string) =>
    fetch(`${gateway.url}/admin/models`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  const deployments = async (): Promise<DeploymentHealth[]> => {
    const response = await adminModels(ADMIN_KEY);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data: { id: string; deployments?: DeploymentHealth[] }[] };
    return body.data.find((m) => m.id === "routed")?.deployments ?? [];
  };
  const ask = () =>
    client.chat.completions.create({ model: "routed", messages: [{ role: "user", content: "Hi" }] });

  it("refuses a caller without a key (401) and a project member's key (403)", async () => {
    const anonymous = await adminModels();
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { type: string } }).error.type).toBe(
      "invalid_request_error",
    );

    const admin = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
    const project = (await (
      await fetch(`${gateway.url}/admin/projects`, {
        method: "POST",
        headers: admin,
        body: JSON.stringify({ name: "members" }),
      })
    ).json()) as { id: string };
    const member = (await (
      await fetch(`${gateway.url}/admin/projects/${project.id}/keys`, {
        method: "POST",
        headers: admin,
        body: JSON.stringify({ name: "member" }),
      })
    ).json()) as { secret: string };
    const refused = await adminModels(member.secret);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("admin_key_required");
  });

  it("shows the failing deployment's circuit open, then closed again once the probe after the cooldown succeeds", async () => {
    expect((await deployments()).map((d) => [d.name, d.circuit])).toEqual([
      ["flaky", "closed"],
      ["standby", "closed"],
    ]);

    flaky.faults.push({ status: 500 }, { status: 500 });
    // Each request fails on flaky and falls over to the standby, which answers.
    await ask();
    await ask();
    expect([flaky.requests.length, standby.requests.length]).toEqual([2, 2]);
    expect(await deployments()).toEqual([
      expect.objectContaining({
        name: "flaky",
        provider: "openai-compatible",
        circuit: "open",
        consecutiveFailures: 2,
        attempts: { succeeded: 0, failed: 2 },
      }),
      expect.objectContaining({ name: "standby", circuit: "closed", attempts: { succeeded: 2, failed: 0 } }),
    ]);
    // Open: flaky is skipped altogether.
    await ask();
    expect([flaky.requests.length, standby.requests.length]).toEqual([2, 3]);

    // After the cooldown one probe goes to flaky; it answers, and the circuit closes.
    timing.advance(10_000);
    await ask();
    expect([flaky.requests.length, standby.requests.length]).toEqual([3, 3]);
    expect((await deployments()).map((d) => [d.name, d.circuit, d.consecutiveFailures])).toEqual([
      ["flaky", "closed", 0],
      ["standby", "closed", 0],
    ]);
  });
});
