import { describe, expect, it } from "vitest";
import { ServiceError } from "../../src/core/errors.js";
import type {
  BackendCapabilities,
  GenerateOptions,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedGeneration,
} from "../../src/core/generation.js";
import { DeploymentTarget } from "../../src/router/deployment-target.js";
import { MemoryDeploymentState } from "../../src/router/memory-deployment-state.js";
import { RoutedBackend } from "../../src/router/routed-backend.js";
import { manualTiming } from "./helpers/gateway.js";

const caps: BackendCapabilities = {
  chat: true,
  completions: true,
  embeddings: false,
  tools: true,
  structuredOutputs: true,
  vision: true,
  audioInput: true,
  fileInput: true,
  logprobs: true,
};

const request = { input: { kind: "chat", messages: [] }, n: 1 } as unknown as GenerationRequest;

/** A deployment that never answers: each attempt waits for its signal and fails with its reason. */
function hangingBackend() {
  const backend = {
    capabilities: caps,
    signals: [] as AbortSignal[],
    prepare(req: GenerationRequest): PreparedGeneration {
      return {
        request: req,
        estimate: { promptTokens: 1, maxTokensPerChoice: 1, choices: 1, exact: false },
        progress: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
      };
    },
    async *generate(_prepared: PreparedGeneration, signal: AbortSignal): AsyncGenerator<GenerationPart> {
      backend.signals.push(signal);
      await new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    },
    close: async () => {},
  };
  return backend;
}

/** One hanging deployment (retries allowed) behind a model whose deadline is 50 ms. */
function routedOverHang() {
  const backend = hangingBackend();
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
  const routed = new RoutedBackend([target], {
    id: "routed",
    balance: "weighted",
    deadlineMs: 50,
    retryBaseMs: 10,
    retryMaxMs: 100,
    batchRateShare: 0.5,
    fallbacks: () => [],
    timing: manualTiming(),
  });
  return { routed, target, backend };
}

async function firstPart(routed: RoutedBackend, signal: AbortSignal, options?: GenerateOptions) {
  const parts = routed.generate(await routed.prepare(request), signal, options);
  return (await parts.next()).value;
}

describe("a caller's signal the router may cut (GenerateOptions.signalOwner)", () => {
  it("is the attempts' own signal, and the deadline cuts it: a 504 held against the deployment", async () => {
    const { routed, target, backend } = routedOverHang();
    const owner = new AbortController();
    const failure = await firstPart(routed, owner.signal, { signalOwner: owner }).catch(
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(ServiceError);
    expect(failure).toMatchObject({ kind: "gateway_timeout", code: "upstream_timeout" });
    expect(backend.signals).toEqual([owner.signal]);
    expect(owner.signal.reason).toMatchObject({ kind: "gateway_timeout", code: "upstream_timeout" });
    expect(target.attempts).toEqual({ succeeded: 0, failed: 1 });
    expect(target.report()).toMatchObject({ consecutiveFailures: 1 });
  });

  it("aborted by the caller, it stops the attempt without holding it against the deployment or retrying", async () => {
    const { routed, target, backend } = routedOverHang();
    const owner = new AbortController();
    const gone = new Error("client disconnected");
    const pending = firstPart(routed, owner.signal, { signalOwner: owner });
    setImmediate(() => owner.abort(gone));
    await expect(pending).rejects.toBe(gone);
    expect(backend.signals).toHaveLength(1);
    expect(target.attempts).toEqual({ succeeded: 0, failed: 0 });
    expect(target.report()).toMatchObject({ circuit: "closed", consecutiveFailures: 0 });
  });

  it("without its controller, the router cuts a signal of its own and leaves the caller's alone", async () => {
    const { routed, target, backend } = routedOverHang();
    const shared = new AbortController();
    const failure = await firstPart(routed, shared.signal).catch((err: unknown) => err);
    expect(failure).toMatchObject({ kind: "gateway_timeout", code: "upstream_timeout" });
    expect(backend.signals).toHaveLength(1);
    expect(backend.signals[0]).not.toBe(shared.signal);
    expect(shared.signal.aborted).toBe(false);
    expect(target.attempts).toEqual({ succeeded: 0, failed: 1 });
  });
});
