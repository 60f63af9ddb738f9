import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Logger } from "pino";
import { LocalEngineFactory } from "../backends/local/engines/engine-factory.js";
import { LocalBackend } from "../backends/local/local-backend.js";
import { createUpstreamBackend } from "../backends/providers/create-upstream-backend.js";
import {
  type DeploymentConfig,
  deploymentNames,
  type RoutedModelConfig,
} from "../config/routed-model-schema.js";
import type { Config, LocalModelConfig } from "../config/schema.js";
import type { ModelPricing } from "../core/pricing.js";
import { makeModel } from "../models/make-model.js";
import { resolveModelFile } from "../models/resolve-model-file.js";
import type { DeploymentStateSettings, DeploymentStateStore } from "../router/deployment-state.js";
import { DeploymentTarget } from "../router/deployment-target.js";
import { MemoryDeploymentStateStore } from "../router/memory-deployment-state.js";
import { type Deployment, ModelRegistry } from "../router/model-registry.js";
import { RoutedBackend, type RouterTiming, realTiming } from "../router/routed-backend.js";

export const DEMO_MODEL_ID = "switchboard-demo";
/** The demo's embedding model, served beside it. */
export const DEMO_EMBED_MODEL_ID = "switchboard-demo-embed";

/** Deployments for every configured model (or the demo model when none is configured). */
export async function buildRegistry(
  config: Config,
  logger: Logger,
  now = Date.now,
  timing: RouterTiming = realTiming,
): Promise<ModelRegistry> {
  // A server with routed models only needs no demo model.
  const configured = config.models.length > 0 || config.routed_models.length > 0;
  const models = configured ? config.models : await demoModels(config, logger);
  const registry = new ModelRegistry();
  const created = Math.floor(now() / 1000);
  const engines = new LocalEngineFactory(config, logger);
  for (const model of models) {
    const { engine, name, choice } = await engines.create(model, () =>
      resolveModelFile(model, config, logger),
    );
    registry.add({
      id: model.id,
      aliases: model.aliases,
      ownedBy: model.owned_by,
      created,
      systemFingerprint: fingerprint(model, name),
      backend: new LocalBackend(engine, {
        chatTemplate: model.chat_template,
        modelId: model.id,
        engineChoice: choice,
        samplingDefaults: model.sampling_defaults && {
          topK: model.sampling_defaults.top_k,
          minP: model.sampling_defaults.min_p,
          repetitionPenalty: model.sampling_defaults.repetition_penalty,
        },
        embedding:
          model.kind === "embedding"
            ? { normalize: model.normalize, matryoshka: model.matryoshka }
            : undefined,
      }),
      loadAtStart: model.load === "start",
      pricing: pricingOf(model.pricing),
    });
  }
  if (config.routed_models.length > 0) {
    const states = await openDeploymentStates(config, logger, timing.now);
    registry.own(states);
    for (const model of config.routed_models)
      registry.add(routedDeployment(model, config, registry, created, timing, states));
  }
  return registry;
}

/**
 * Where circuits and rpm / tpm caps are kept: in Redis when one is configured, so every instance
 * opens, probes and closes a deployment's circuit together and shares its caps; else in this process.
 */
export async function openDeploymentStates(
  config: Config,
  logger: Logger,
  now: () => number = Date.now,
): Promise<DeploymentStateStore> {
  if (!config.redis) return new MemoryDeploymentStateStore(now);
  // The Redis client is loaded only when Redis is configured.
  const [{ Redis }, { FAIL_FAST_REDIS_OPTIONS }, { RedisDeploymentStateStore }] = await Promise.all([
    import("ioredis"),
    import("../limits/redis-limit-store.js"),
    import("../router/redis-deployment-state.js"),
  ]);
  return new RedisDeploymentStateStore(new Redis(config.redis, FAIL_FAST_REDIS_OPTIONS), {
    prefix: config.redis_prefix,
    closeClient: true,
    onAvailabilityChange: (err) =>
      err
        ? logger.warn(
            { err: err.message },
            "router state: Redis is unreachable; each deployment's circuit and caps are kept by this instance alone until it answers",
          )
        : logger.info("router state: Redis answers again; circuits and caps are shared"),
  });
}

function routedDeployment(
  model: RoutedModelConfig,
  config: Config,
  registry: ModelRegistry,
  created: number,
  timing: RouterTiming,
  states: DeploymentStateStore,
): Deployment {
  const names = deploymentNames(model.deployments);
  const targets = model.deployments.map((d, j) => {
    const local = d.provider === "local";
    const name = names[j] as string;
    const state = states.forDeployment(model.id, name, deploymentStateSettings(config, model, d));
    return new DeploymentTarget(
      {
        name,
        provider: d.provider,
        // Validation made sure a local deployment names a local model, added above.
        backend: local ? registry.resolve(d.model).backend : createUpstreamBackend(d),
        weight: d.weight,
        maxRetries: d.max_retries,
        owned: !local,
      },
      state,
    );
  });
  const backend = new RoutedBackend(targets, {
    id: model.id,
    balance: model.balance,
    deadlineMs: model.deadline_ms,
    retryBaseMs: config.router.retry_base_ms,
    retryMaxMs: config.router.retry_max_ms,
    batchRateShare: config.router.batch_rate_share,
    fallbacks: () => model.fallbacks.map((name) => registry.resolve(name).backend),
    timing,
  });
  return {
    id: model.id,
    aliases: model.aliases,
    ownedBy: model.owned_by,
    created,
    systemFingerprint: routedFingerprint(model),
    backend,
    loadAtStart: false,
    pricing: pricingOf(model.pricing),
  };
}

/** The circuit and cap settings of one deployment of a routed model. */
export function deploymentStateSettings(
  config: Config,
  model: RoutedModelConfig,
  deployment: DeploymentConfig,
): DeploymentStateSettings {
  const local = deployment.provider === "local";
  return {
    breakerFailures: config.router.breaker_failures,
    breakerCooldownMs: config.router.breaker_cooldown_ms,
    probeTtlMs: model.deadline_ms,
    rpm: local ? undefined : deployment.rpm,
    tpm: local ? undefined : deployment.tpm,
  };
}

function pricingOf(pricing: LocalModelConfig["pricing"]): ModelPricing | undefined {
  return (
    pricing && {
      inputPerMillionUsd: pricing.input_per_million_usd,
      outputPerMillionUsd: pricing.output_per_million_usd,
      cachedInputPerMillionUsd: pricing.cached_input_per_million_usd ?? pricing.input_per_million_usd,
    }
  );
}

/** Changes when the deployments behind a routed model change (never derived from a key). */
function routedFingerprint(model: RoutedModelConfig): string {
  const shape = model.deployments.map((d) =>
    d.provider === "local" ? `local\0${d.model}` : `${d.provider}\0${d.base_url}\0${d.model}`,
  );
  return `fp_${createHash("sha256").update(shape.join("\n")).digest("hex").slice(0, 10)}`;
}

/** Loads every model marked load: start; a failure names the model and stops start-up. */
export async function loadStartupModels(registry: ModelRegistry, logger: Logger): Promise<void> {
  for (const deployment of registry.all()) {
    if (!deployment.loadAtStart) continue;
    const started = performance.now();
    try {
      await deployment.backend.ready();
    } catch (err) {
      throw new Error(`Model '${deployment.id}' failed to load: ${(err as Error).message}`);
    }
    logger.info({ model: deployment.id, ms: Math.round(performance.now() - started) }, "model loaded");
  }
}

function fingerprint(model: LocalModelConfig, engine: string): string {
  const hash = createHash("sha256")
    .update(`${model.source}\0${model.sha256 ?? ""}\0${engine}\0${model.context_size ?? ""}`)
    .digest("hex");
  return `fp_${hash.slice(0, 10)}`;
}

/** Where a demo model is generated (once) in the data dir. */
export function demoModelPath(config: Pick<Config, "data_dir">, id = DEMO_MODEL_ID): string {
  return join(resolve(config.data_dir, "models"), `${id}.gguf`);
}

/**
 * The model names (ids and aliases) a server started with this config serves: what a key's
 * `allowed_models` may name. The demo model when none is configured.
 */
export function servedModelNames(config: Pick<Config, "models" | "routed_models" | "demo_model">): string[] {
  if (config.models.length === 0 && config.routed_models.length === 0)
    return config.demo_model ? [DEMO_MODEL_ID, DEMO_EMBED_MODEL_ID] : [];
  return [...config.models, ...config.routed_models].flatMap((m) => [m.id, ...m.aliases]);
}

async function demoModels(config: Config, logger: Logger): Promise<LocalModelConfig[]> {
  if (!config.demo_model) return [];
  const path = demoModelPath(config);
  const embedPath = demoModelPath(config, DEMO_EMBED_MODEL_ID);
  for (const [file, preset] of [
    [path, "tiny"],
    [embedPath, "embed-tiny"],
  ] as const) {
    if (existsSync(file)) continue;
    await mkdir(dirname(file), { recursive: true });
    await makeModel({ preset, out: file, seed: 1 });
  }
  logger.warn(
    { model: DEMO_MODEL_ID, embeddingModel: DEMO_EMBED_MODEL_ID, path },
    `No model is configured, so Switchboard serves the built-in demo models '${DEMO_MODEL_ID}' (chat) and '${DEMO_EMBED_MODEL_ID}' (embeddings). Their weights are RANDOM: they produce gibberish and meaningless vectors. Configure a real model with --model ./path/to/model.gguf or a 'models:' entry in switchboard.yaml (see README).`,
  );
  return demoModelConfigs(config);
}

/** The demo models' entries (their files are generated in the data dir when first served). */
export function demoModelConfigs(config: Pick<Config, "data_dir">): LocalModelConfig[] {
  const demo = {
    parallel: 4,
    threads: 1,
    gpu_layers: 0,
    load: "start",
    max_queue: 64,
    owned_by: "switchboard",
    normalize: true,
  } as const;
  return [
    {
      ...demo,
      aliases: [],
      id: DEMO_MODEL_ID,
      source: demoModelPath(config),
      kind: "chat",
      matryoshka: false,
    },
    {
      ...demo,
      aliases: [],
      id: DEMO_EMBED_MODEL_ID,
      source: demoModelPath(config, DEMO_EMBED_MODEL_ID),
      kind: "embedding",
      matryoshka: true,
    },
  ];
}
