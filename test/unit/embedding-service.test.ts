import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/principal.js";
import { ServiceError, serviceUnavailable } from "../../src/core/errors.js";
import type {
  EmbeddingRequest,
  EmbeddingResult,
  ModelBackend,
  PreparedEmbedding,
} from "../../src/core/generation.js";
import { type EmbeddingCall, GenerationService } from "../../src/generation/service.js";
import { LimitEnforcer } from "../../src/limits/limit-enforcer.js";
import { MemoryLimitStore } from "../../src/limits/memory-limit-store.js";
import { NO_LIMITS, type UsageRecord, type UsageRepository } from "../../src/storage/repositories/types.js";
import { Metering } from "../../src/usage/metering.js";
import { ALL_CAPABILITIES, ScriptedBackend, scriptedRegistry } from "../helpers/scripted-backend.js";

/** An embedding backend that counts one token per character and embeds to [length]. */
class CountingEmbedder extends ScriptedBackend implements ModelBackend {
  override readonly capabilities = { ...ALL_CAPABILITIES, chat: false, completions: false, embeddings: true };
  failure: Error | undefined;

  constructor() {
    super([]);
  }

  async prepareEmbedding(request: EmbeddingRequest): Promise<PreparedEmbedding> {
    const texts = request.input.kind === "text" ? request.input.texts : [];
    const promptTokens = texts.reduce((sum, text) => sum + text.length, 0);
    return { request, estimate: { promptTokens, maxTokensPerChoice: 0, choices: 1, exact: true } };
  }

  async embed(prepared: PreparedEmbedding): Promise<EmbeddingResult> {
    if (this.failure) throw this.failure;
    const texts = prepared.request.input.kind === "text" ? prepared.request.input.texts : [];
    return {
      vectors: texts.map((text) => Float32Array.of(text.length)),
      promptTokens: prepared.estimate.promptTokens,
    };
  }
}

function harness(tokensPerMinute: number) {
  const backend = new CountingEmbedder();
  const records: UsageRecord[] = [];
  const enforcer = new LimitEnforcer(new MemoryLimitStore(), {} as UsageRepository);
  const metering = new Metering(enforcer, { record: (r) => records.push(r) });
  const service = new GenerationService({ registry: scriptedRegistry(backend, "embedder"), metering });
  const principal: Principal = {
    projectId: "proj_embed",
    keyId: "key_embed",
    role: "member",
    allowedModels: null,
    keyLimits: { ...NO_LIMITS, tokensPerMinute },
    projectLimits: NO_LIMITS,
  };
  const call = (texts: string[]): EmbeddingCall => ({
    principal,
    endpoint: "embeddings",
    model: "embedder",
    toRequest: (deployment) => ({ model: deployment.id, input: { kind: "text", texts } }),
    signal: new AbortController().signal,
  });
  return { backend, records, service, call };
}

describe("embeddings through the generation service", () => {
  it("charges the input tokens to the caller's limits and usage records", async () => {
    const { service, records, call } = harness(1_000);
    const done = await service.embed(call(["abcd", "ef"]));
    expect(done.result.vectors.map((v) => v[0])).toEqual([4, 2]);
    expect(done.hints["x-ratelimit-limit-tokens"]).toBe("1000");
    expect(done.hints["x-ratelimit-remaining-tokens"]).toBe("994");
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      projectId: "proj_embed",
      endpoint: "embeddings",
      model: "embedder",
      promptTokens: 6,
      completionTokens: 0,
      status: 200,
    });
  });

  it("refuses input beyond the caller's token limit with a 429 before embedding", async () => {
    const { service, records, call } = harness(10);
    const refused = await service.embed(call(["x".repeat(11)])).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ServiceError);
    expect((refused as ServiceError).kind).toBe("rate_limited");
    expect(records).toHaveLength(0);
  });

  it("does not charge an embedding the engine failed to compute", async () => {
    const { service, records, call, backend } = harness(1_000);
    backend.failure = serviceUnavailable("engine restarting");
    await expect(service.embed(call(["abc"]))).rejects.toMatchObject({ kind: "unavailable" });
    expect(records[0]).toMatchObject({ promptTokens: 0, status: 503 });
  });
});
