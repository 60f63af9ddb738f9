import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RoutedBackend } from "../../src/router/routed-backend.js";
import { failureOf, type Gateway, manualTiming, startGateway } from "./helpers/gateway.js";
import { type MockAnthropic, startMockAnthropicUpstream } from "./helpers/mock-anthropic-upstream.js";
import { type MockGemini, startMockGeminiUpstream } from "./helpers/mock-gemini-upstream.js";
import { type MockUpstream, startMockOpenAiUpstream } from "./helpers/mock-openai-upstream.js";
import { expectRequestsConform } from "./helpers/upstream-request-schemas.js";

/**
 * A model with an Anthropic and an OpenAI-compatible deployment. The test clock's random is a
 * constant, so deployments with nothing in flight are tried in the order they are configured.
 */
describe("a model whose deployments translate a request differently", () => {
  let claude: MockAnthropic;
  let gemini: MockGemini;
  let openai: MockUpstream;
  let gateway: Gateway | undefined;

  beforeAll(async () => {
    claude = await startMockAnthropicUpstream();
    gemini = await startMockGeminiUpstream();
    openai = await startMockOpenAiUpstream();
  });
  afterAll(async () => {
    await claude?.close();
    await gemini?.close();
    await openai?.close();
  });
  beforeEach(() => {
    claude.requests.length = 0;
    claude.faults.length = 0;
    gemini.requests.length = 0;
    gemini.faults.length = 0;
    openai.requests.length = 0;
    openai.faults.length = 0;
  });
  afterEach(async () => {
    await gateway?.stop();
    gateway = undefined;
    expectRequestsConform(claude, gemini, openai);
  });

  const anthropicDeployment = (fields: Record<string, unknown> = {}) => ({
    name: "claude",
    provider: "anthropic",
    base_url: claude.url,
    api_key: "sk-ant-test",
    model: "claude-test",
    ...fields,
  });
  const openAiDeployment = (fields: Record<string, unknown> = {}) => ({
    name: "openai",
    provider: "openai-compatible",
    base_url: `${openai.url}/v1`,
    model: "m",
    ...fields,
  });

  const start = async (models: Record<string, unknown>[]) => {
    gateway = await startGateway({ routed_models: models }, manualTiming());
    return gateway;
  };
  const firstDeployment = (g: Gateway) =>
    (g.server.registry.resolve("mixed").backend as RoutedBackend).health().deployments?.[0];

  it("skips a deployment that refuses the request (n: 2, seed, temperature 1.5) for one that can serve it", async () => {
    const g = await start([{ id: "mixed", deployments: [anthropicDeployment(), openAiDeployment()] }]);
    for (const refused of [{ n: 2 }, { seed: 7 }, { temperature: 1.5 }]) {
      const completion = await g.client.chat.completions.create({
        model: "mixed",
        messages: [{ role: "user", content: "Hi" }],
        ...refused,
      });
      expect(completion.choices[0]?.message.content).toBe("Hello from upstream");
    }
    expect([claude.requests.length, openai.requests.length]).toEqual([0, 3]);
    // Not tried, so not a failure of its own: its circuit stays closed and nothing is counted.
    expect(firstDeployment(g)).toMatchObject({ circuit: "closed", consecutiveFailures: 0 });
    expect(firstDeployment(g)?.attempts).toEqual({ succeeded: 0, failed: 0 });
  });

  it("after a retryable failure, passes over a refusing deployment to the fallback model", async () => {
    const g = await start([
      {
        id: "mixed",
        fallbacks: ["backup"],
        deployments: [openAiDeployment({ max_retries: 0 }), anthropicDeployment()],
      },
      { id: "backup", deployments: [openAiDeployment({ name: "backup" })] },
    ]);
    openai.faults.push({ status: 500 });
    const completion = await g.client.chat.completions.create({
      model: "mixed",
      messages: [{ role: "user", content: "Hi" }],
      n: 2,
    });
    expect(completion.choices).toHaveLength(2);
    expect([claude.requests.length, openai.requests.length]).toEqual([0, 2]);
  });

  it("after a retryable failure with no fallback, answers that failure, not the other deployment's refusal", async () => {
    const g = await start([
      { id: "mixed", deployments: [openAiDeployment({ max_retries: 0 }), anthropicDeployment()] },
    ]);
    openai.faults.push({ status: 500 });
    const error = await failureOf(
      g.client.chat.completions.create({
        model: "mixed",
        messages: [{ role: "user", content: "Hi" }],
        seed: 1,
      }),
    );
    expect(error.status).toBe(502);
    expect(error.headers?.get("x-should-retry")).toBe("true");
    expect([claude.requests.length, openai.requests.length]).toEqual([0, 1]);
  });

  it("answers the first deployment's refusal with a 400 when no deployment can serve the request", async () => {
    const g = await start([
      {
        id: "mixed",
        deployments: [anthropicDeployment(), anthropicDeployment({ name: "claude-2", weight: 0 })],
      },
    ]);
    const error = await failureOf(
      g.client.chat.completions.create({ model: "mixed", messages: [{ role: "user", content: "Hi" }], n: 2 }),
    );
    expect(error.status).toBe(400);
    expect(error.param).toBe("n");
    expect(claude.requests).toHaveLength(0);
    expect(firstDeployment(g)?.attempts).toEqual({ succeeded: 0, failed: 0 });
  });

  it("embeds token ids on the deployment that takes them, passing over Gemini (text only)", async () => {
    const g = await start([
      {
        id: "mixed",
        deployments: [
          {
            name: "gemini",
            provider: "gemini",
            base_url: `${gemini.url}/v1beta`,
            api_key: "k",
            model: "gemini-test",
          },
          openAiDeployment(),
        ],
      },
    ]);
    const result = await g.client.embeddings.create({ model: "mixed", input: [[1, 2, 3]] });
    expect(result.data.map((d) => d.embedding)).toEqual([[0, 0.5, -0.25]]);
    expect([gemini.requests.length, openai.requests.length]).toEqual([0, 1]);
    expect(firstDeployment(g)?.attempts).toEqual({ succeeded: 0, failed: 0 });
    // Text goes to the first deployment as configured.
    await g.client.embeddings.create({ model: "mixed", input: ["a"] });
    expect([gemini.requests.length, openai.requests.length]).toEqual([1, 1]);
  });
});
