import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { type Cancellation, CancelSource, cancellationOf } from "../../src/core/cancellation.js";
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
import { RoutedBackend, realTiming } from "../../src/router/routed-backend.js";
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

/** In a script, an attempt that never answers: it waits for its signal and fails with the reason. */
const HANG = Symbol("hang");

/** A backend whose attempts fail with the given errors in turn (or hang), then answer one text part. */
function scriptedBackend(failures: unknown[]) {
  const backend = {
    capabilities: caps,
    calls: 0,
    /** The cancellation each attempt was given. */
    signals: [] as Cancellation[],
    async prepare(req: GenerationRequest): Promise<PreparedGeneration> {
      return {
        request: req,
        estimate: { promptTokens: 1, maxTokensPerChoice: 1, choices: 1, exact: false },
        progress: { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
      };
    },
    async *generate(_prepared: PreparedGeneration, cancel: Cancellation): AsyncGenerator<GenerationPart> {
      backend.signals.push(cancel);
      const failure = failures[backend.calls++];
      if (failure === HANG) {
        await new Promise<never>((_, reject) => {
          if (cancel.aborted) reject(cancel.reason);
          cancel.onAbort(() => reject(cancel.reason));
        });
      }
      if (failure !== undefined) throw failure;
      yield { type: "text", choice: 0, text: "ok" };
    },
    close: async () => {},
  };
  return backend;
}

function routedOver(backend: ReturnType<typeof scriptedBackend>, deadlineMs = 60_000) {
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
  const routed = new RoutedBackend([target], routerOptions("least_in_flight", deadlineMs));
  return { routed, target };
}

/** A routed model's options for these tests: no fallbacks, short backoff, a manual clock. */
function routerOptions(balance: "weighted" | "least_in_flight", deadlineMs = 60_000) {
  return {
    id: "routed",
    balance,
    deadlineMs,
    retryBaseMs: 10,
    retryMaxMs: 100,
    batchRateShare: 0.5,
    fallbacks: () => [],
    timing: manualTiming(),
  };
}

async function firstPart(routed: RoutedBackend, caller: Cancellation = new CancelSource()): Promise<unknown> {
  const parts = routed.generate(await routed.prepare(request), caller);
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

describe("the caller's cancellation and the router's deadline", () => {
  const timeout = { kind: "gateway_timeout", code: "upstream_timeout" };

  it("the deadline cuts the attempts, not the caller: a 504 held against the deployment", async () => {
    const backend = scriptedBackend([HANG]);
    const { routed, target } = routedOver(backend, 50);
    const caller = new CancelSource();
    const failure = await firstPart(routed, caller).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ServiceError);
    expect(failure).toMatchObject(timeout);
    expect(backend.signals).toHaveLength(1);
    expect(backend.signals[0]).not.toBe(caller);
    expect(backend.signals[0]?.reason).toMatchObject(timeout);
    expect(caller.aborted).toBe(false);
    expect(target.attempts).toEqual({ succeeded: 0, failed: 1 });
    expect(target.report()).toMatchObject({ consecutiveFailures: 1 });
  });

  it("cut by the caller, it stops the attempt without holding it against the deployment or retrying", async () => {
    const backend = scriptedBackend([HANG]);
    const { routed, target } = routedOver(backend, 50);
    const caller = new CancelSource();
    const gone = new Error("client disconnected");
    const pending = firstPart(routed, caller);
    setImmediate(() => caller.abort(gone));
    await expect(pending).rejects.toBe(gone);
    expect(backend.signals[0]?.reason).toBe(gone);
    expect(backend.calls).toBe(1);
    expect(target.attempts).toEqual({ succeeded: 0, failed: 0 });
    expect(target.report()).toMatchObject({ circuit: "closed", consecutiveFailures: 0 });
  });

  it("a worker's AbortSignal is left alone by the deadline, and let go of once the call failed", async () => {
    const backend = scriptedBackend([HANG]);
    const { routed, target } = routedOver(backend, 50);
    const shared = new AbortController();
    const failure = await firstPart(routed, cancellationOf(shared.signal)).catch((e: unknown) => e);
    expect(failure).toMatchObject(timeout);
    expect(shared.signal.aborted).toBe(false);
    expect(getEventListeners(shared.signal, "abort")).toHaveLength(0);
    expect(target.attempts).toEqual({ succeeded: 0, failed: 1 });
  });
});

describe("the router's backoff sleep", () => {
  it("ends at once when the attempts are cut, and takes its hook back", async () => {
    const attempts = new CancelSource();
    const slept = realTiming.sleep(60_000, attempts);
    attempts.abort(new Error("deadline"));
    await slept;
    const worker = new AbortController();
    const shared = cancellationOf(worker.signal);
    const long = realTiming.sleep(60_000, shared);
    expect(getEventListeners(worker.signal, "abort")).toHaveLength(1);
    worker.abort();
    await long;
    expect(getEventListeners(worker.signal, "abort")).toHaveLength(0);
  });

  it("leaves no listener on a worker's signal once it has slept", async () => {
    const worker = new AbortController();
    await realTiming.sleep(1, cancellationOf(worker.signal));
    expect(getEventListeners(worker.signal, "abort")).toHaveLength(0);
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
    const err = await routed.embed(await routed.prepareEmbedding(req), new CancelSource()).catch((e) => e);
    expect(err).toMatchObject({ kind: "invalid_request", param: "input" });
    expect(targets.map((t) => t.attempts)).toEqual([
      { succeeded: 0, failed: 0 },
      { succeeded: 0, failed: 0 },
    ]);
  });
});
