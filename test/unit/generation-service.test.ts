import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/principal.js";
import { ServiceError } from "../../src/core/errors.js";
import type { GenerationPart } from "../../src/core/generation.js";
import { textContent } from "../../src/core/messages.js";
import { collectGeneration, type GenerationCall, GenerationService } from "../../src/generation/service.js";
import { LimitEnforcer } from "../../src/limits/limit-enforcer.js";
import { MemoryLimitStore } from "../../src/limits/memory-limit-store.js";
import { NO_LIMITS, type UsageRecord, type UsageRepository } from "../../src/storage/repositories/types.js";
import { Metering } from "../../src/usage/metering.js";
import { ScriptedBackend, scriptedRegistry } from "../helpers/scripted-backend.js";

/**
 * The generation service with no socket at all, as a batch worker or an assistants run calls it:
 * access, limits, usage records and cancellation all hold without HTTP.
 */

const SCRIPT: GenerationPart[] = [
  { type: "text", choice: 0, text: "Hello" },
  { type: "finish", choice: 0, reason: "stop" },
  { type: "usage", promptTokens: 10, completionTokens: 3, cachedTokens: 2 },
];

function harness() {
  const backend = new ScriptedBackend(SCRIPT);
  const records: UsageRecord[] = [];
  // Budgets are off in these principals, so the usage repository is never asked.
  const enforcer = new LimitEnforcer(new MemoryLimitStore(), {} as UsageRepository);
  const metering = new Metering(enforcer, { record: (r) => records.push(r) });
  const service = new GenerationService({ registry: scriptedRegistry(backend), metering });
  return { backend, records, service };
}

const principal: Principal = {
  projectId: "proj_batch",
  keyId: "key_batch",
  role: "member",
  allowedModels: null,
  keyLimits: { ...NO_LIMITS, maxConcurrent: 1, tokensPerMinute: 10_000 },
  projectLimits: NO_LIMITS,
};

function call(signal: AbortSignal, overrides: Partial<GenerationCall> = {}): GenerationCall {
  return {
    principal,
    endpoint: "batch",
    capability: "chat",
    model: "scripted",
    toRequest: (deployment) => ({
      model: deployment.id,
      input: { kind: "chat", messages: [{ role: "user", content: textContent("Hi") }] },
      sampling: { temperature: 1, topP: 1, presencePenalty: 0, frequencyPenalty: 0 },
      maxTokens: 16,
      stop: [],
      n: 1,
    }),
    signal,
    ...overrides,
  };
}

const textOf = (parts: readonly GenerationPart[]) => {
  let text = "";
  for (const part of parts) if (part.type === "text") text += part.text;
  return text;
};

describe("the generation service without a socket", () => {
  it("generates, reports rate-limit hints and records usage under the caller's endpoint", async () => {
    const { service, records } = harness();
    const signal = new AbortController().signal;
    const telemetry = {};
    const generation = await service.start(call(signal, { telemetry }));
    expect(generation.hints["x-ratelimit-limit-tokens"]).toBe("10000");
    expect(await collectGeneration(generation, signal, textOf)).toBe("Hello");
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      projectId: "proj_batch",
      keyId: "key_batch",
      endpoint: "batch",
      model: "scripted",
      promptTokens: 10,
      completionTokens: 3,
      cachedTokens: 2,
      status: 200,
    });
    expect(telemetry).toMatchObject({ model: "scripted", promptTokens: 10, completionTokens: 3 });
  });

  it("holds a concurrency place until the generation ends, then frees it", async () => {
    const { service } = harness();
    const signal = new AbortController().signal;
    const first = await service.start(call(signal));
    const refused = await service.start(call(signal)).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ServiceError);
    expect((refused as ServiceError).kind).toBe("rate_limited");
    await first.end();
    const again = await service.start(call(signal));
    await again.end();
  });

  it("refuses a model the principal may not use exactly as an unknown one", async () => {
    const { service } = harness();
    const signal = new AbortController().signal;
    const hidden = { ...principal, allowedModels: ["other"] };
    const err = await service.start(call(signal, { principal: hidden })).catch((e: unknown) => e);
    expect((err as ServiceError).kind).toBe("unknown_model");
    expect((err as ServiceError).code).toBe("model_not_found");
  });

  it("does not pass a cancelled generation off as a success, and records it as such", async () => {
    const { service, records } = harness();
    const controller = new AbortController();
    const generation = await service.start(call(controller.signal));
    controller.abort();
    const err = await collectGeneration(generation, controller.signal, textOf).catch((e: unknown) => e);
    expect((err as ServiceError).kind).toBe("unavailable");
    expect(records.at(-1)?.status).toBe(503);
  });

  it("hands the caller's priority to the backend: interactive unless the call says batch", async () => {
    const { service, backend } = harness();
    const signal = new AbortController().signal;
    await (await service.start(call(signal))).end();
    expect(backend.requests.at(-1)?.priority).toBeUndefined();
    await (await service.start(call(signal, { priority: "batch" }))).end();
    expect(backend.requests.at(-1)?.priority).toBe("batch");
  });

  it("starts the backend at the first part asked for, and tells it when the caller leaves early", async () => {
    const { service, backend } = harness();
    const signal = new AbortController().signal;
    const events: string[] = [];
    backend.generate = async function* () {
      events.push("started");
      try {
        yield { type: "text", choice: 0, text: "one" };
        yield { type: "text", choice: 0, text: "two" };
      } finally {
        events.push("stopped");
      }
    };
    const telemetry: { timeToFirstTokenMs?: number } = {};
    const generation = await service.start(call(signal, { telemetry }));
    expect(events).toEqual([]);
    const parts = generation.parts[Symbol.asyncIterator]();
    // Two asks at once are answered in order, as a generator answers them.
    const [first, second] = await Promise.all([parts.next(), parts.next()]);
    expect([first.value, second.value]).toMatchObject([{ text: "one" }, { text: "two" }]);
    expect(telemetry.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
    await parts.return?.(undefined);
    expect(events).toEqual(["started", "stopped"]);
    expect(await parts.next()).toEqual({ done: true, value: undefined });
    await generation.end();
  });

  it("ends the parts with the backend's error, and does not ask a failed backend to return", async () => {
    const { service, backend } = harness();
    const signal = new AbortController().signal;
    let returned = false;
    const failing = {
      [Symbol.asyncIterator]: () => failing,
      next: () => Promise.reject(new Error("upstream broke")),
      return: async () => {
        returned = true;
        return { done: true as const, value: undefined };
      },
    };
    backend.generate = () => failing as unknown as AsyncGenerator<GenerationPart>;
    const generation = await service.start(call(signal));
    const parts = generation.parts[Symbol.asyncIterator]();
    await expect(parts.next()).rejects.toThrow("upstream broke");
    expect(await parts.next()).toEqual({ done: true, value: undefined });
    await parts.return?.(undefined);
    expect(returned).toBe(false);
    await generation.end({ error: new Error("upstream broke") });
  });
});
