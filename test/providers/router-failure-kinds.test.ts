import { describe, expect, it } from "vitest";
import { invalidRequest, ServiceError } from "../../src/core/errors.js";
import type {
  BackendCapabilities,
  EmbeddingRequest,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedGeneration,
} from "../../src/core/generation.js";
import { DeploymentTarget } from "../../src/router/deployment-target.js";
import { MemoryDeploymentState } from "../../src/router/memory-deployment-state.js";
import { isOwnBug, isRetryable } from "../../src/router/retry-delay.js";
import { RoutedBackend } from "../../src/router/routed-backend.js";
import { manualTiming } from "./helpers/gateway.js";

const caps: BackendCapabilities = {
  chat: true,
  completions: true,
  embeddings: true,
  tools: true,
  structuredOutputs: true,
  vision: true,
  audioInput: true,
  fileInput: true,
  logprobs: true,
};

const request = { input: { kind: "chat", messages: [] }, n: 1 } as unknown as GenerationRequest;

/** A backend whose attempts fail with the given errors in turn, then answer one text part. */
function scriptedBackend(failures: unknown[]) {
  const backend = {
    capabilities: caps,
    calls: 0,
    async prepare(req: GenerationRequest): Promise<PreparedGeneration> {
      return {
        request: req,
        estimate: { promptTokens: 1, maxTokensPerChoice: 1, choices: 1, exact: false },
        progress: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
      };
    },
    async *generate(): AsyncGenerator<GenerationPart> {
      const failure = failures[backend.calls++];
      if (failure !== undefined) throw failure;
      yield { type: "text", choice: 0, text: "ok" };
    },
    close: async () => {},
  };
  return backend;
}

function routedOver(backend: ReturnType<typeof scriptedBackend>) {
  const target = new DeploymentTarget(
    {
      name: "d",
      provider: "test",
      backend: backend as unknown as ModelBackend,
      weight: 1,
      maxRetries: 2,
      owned: false,
    },
    new MemoryDeploymentState({ breakerFailures: 5, breakerCooldownMs: 60_000, probeTtlMs: 60_000 }, () => 0),
  );
  const routed = new RoutedBackend([target], routerOptions("least_in_flight"));
  return { routed, target };
}

/** A routed model's options for these tests: no fallbacks, short backoff, a manual clock. */
function routerOptions(balance: "weighted" | "least_in_flight") {
  return {
    id: "routed",
    balance,
    deadlineMs: 60_000,
    retryBaseMs: 10,
    retryMaxMs: 100,
    batchRateShare: 0.5,
    fallbacks: () => [],
    timing: manualTiming(),
  };
}

async function firstPart(routed: RoutedBackend): Promise<unknown> {
  const parts = routed.generate(await routed.prepare(request), new AbortController().signal);
  return (await parts.next()).value;
}

describe("how the router tells an upstream's failure from a bug of its own", () => {
  it("a bug of ours (TypeError) is thrown at once: not retried, not counted against the deployment's circuit", async () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'choices')");
    const backend = scriptedBackend([bug]);
    const { routed, target } = routedOver(backend);
    await expect(firstPart(routed)).rejects.toBe(bug);
    expect(backend.calls).toBe(1);
    expect(target.report()).toMatchObject({ circuit: "closed", consecutiveFailures: 0 });
    expect(target.attempts).toEqual({ succeeded: 0, failed: 0 });
  });

  it("a network error (ECONNRESET, fetch's TypeError with a coded cause) is retried and counted", async () => {
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    const fetchFailed = new TypeError("fetch failed", {
      cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }),
    });
    const backend = scriptedBackend([reset, fetchFailed]);
    const { routed, target } = routedOver(backend);
    expect(await firstPart(routed)).toEqual({ type: "text", choice: 0, text: "ok" });
    expect(backend.calls).toBe(3);
    expect(target.attempts).toEqual({ succeeded: 1, failed: 2 });
  });

  it("classifies errors: our own bugs are not retryable, network and upstream faults are", () => {
    expect(isOwnBug(new TypeError("x is not a function"))).toBe(true);
    expect(isOwnBug(new RangeError("Invalid array length"))).toBe(true);
    expect(isOwnBug(Object.assign(new TypeError("bad argument"), { code: "ERR_INVALID_ARG_TYPE" }))).toBe(
      true,
    );
    expect(isRetryable(new TypeError("x is not a function"))).toBe(false);
    expect(isRetryable(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe(true);
    expect(isRetryable(new TypeError("fetch failed", { cause: { code: "UND_ERR_SOCKET" } }))).toBe(true);
    const protocol = new ServiceError(
      "bad_gateway",
      "The upstream provider sent an answer that is not JSON.",
      {
        code: "upstream_protocol_error",
        hints: { "x-should-retry": "true" },
      },
    );
    expect(isOwnBug(protocol)).toBe(false);
    expect(isRetryable(protocol)).toBe(true);
  });
});

describe("a request every deployment refuses", () => {
  it("answers the first configured deployment's refusal, whichever deployment the balance drew first", async () => {
    const refusing = (param: string) =>
      ({
        capabilities: caps,
        prepareEmbedding: async () => {
          throw invalidRequest(`refused on ${param}`, param);
        },
        embed: async () => {
          throw new Error("never sent");
        },
      }) as unknown as ModelBackend;
    const state = () =>
      new MemoryDeploymentState({ breakerFailures: 5, breakerCooldownMs: 1, probeTtlMs: 1 }, () => 0);
    const targets = [
      new DeploymentTarget(
        {
          name: "first",
          provider: "test",
          backend: refusing("input"),
          weight: 1,
          maxRetries: 0,
          owned: false,
        },
        state(),
      ),
      new DeploymentTarget(
        {
          name: "heavy",
          provider: "test",
          backend: refusing("dimensions"),
          weight: 9,
          maxRetries: 0,
          owned: false,
        },
        state(),
      ),
    ];
    // A constant draw puts the heavier deployment first.
    const routed = new RoutedBackend(targets, routerOptions("weighted"));
    const req: EmbeddingRequest = { model: "routed", input: { kind: "text", texts: ["a"] } };
    const err = await routed
      .embed(await routed.prepareEmbedding(req), new AbortController().signal)
      .catch((e) => e);
    expect(err).toMatchObject({ kind: "invalid_request", param: "input" });
    expect(targets.map((t) => t.attempts)).toEqual([
      { succeeded: 0, failed: 0 },
      { succeeded: 0, failed: 0 },
    ]);
  });
});
