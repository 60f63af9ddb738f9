import { z } from "zod";

/**
 * Public models served by one or more deployments: upstream providers (any OpenAI-compatible
 * server, Anthropic, Gemini) and local models, behind a router that balances, retries, falls back
 * and breaks circuits. Upstream hosts come from here only: nothing in a request can choose where
 * the server connects.
 */

export const modelIdSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "model ids use letters, digits and . _ : / -");

export const pricingSchema = z
  .object({
    input_per_million_usd: z.number().min(0),
    output_per_million_usd: z.number().min(0),
    /** Defaults to the input price. */
    cached_input_per_million_usd: z.number().min(0).optional(),
  })
  .strict();

const httpUrl = z
  .url()
  .refine((value) => /^https?:\/\//i.test(value), "use an http:// or https:// URL")
  // Requests go to the URL's origin: a user and password in it would be dropped without a word.
  .refine((value) => {
    const url = new URL(value);
    return url.username === "" && url.password === "";
  }, "no user or password in the URL: send credentials with api_key or headers")
  .transform((value) => value.replace(/\/+$/, ""));

/** What every deployment has, whatever serves it. */
const deploymentCommon = {
  /** A name for logs, metrics and the admin API; default `<provider>:<model>`. Never the key. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/, "use letters, digits and . _ : / @ -")
    .optional(),
  /** Share of the traffic relative to the model's other deployments. */
  weight: z.number().min(0).max(1_000_000).default(1),
  /** Retries of a retryable failure (connection error, 408, 409, 429, 5xx) here before moving on. */
  max_retries: z.number().int().min(0).max(10).default(2),
  /** Prices for usage costs and cost budgets (USD per million tokens); default: the model's. */
  pricing: pricingSchema.optional(),
};

/** What every upstream provider deployment has. */
const upstreamCommon = {
  ...deploymentCommon,
  /** The model name the upstream knows. */
  model: z.string().min(1).max(512),
  /** The key sent upstream; write `${ENV_VAR}` so it stays out of the file. */
  api_key: z.string().min(1).optional(),
  /** One attempt may wait this long for the upstream's first event. */
  timeout_ms: z.number().int().min(1).max(3_600_000).default(60_000),
  /** A started answer may go this long without a byte before it is cut off. */
  idle_timeout_ms: z.number().int().min(1).max(3_600_000).default(60_000),
  /** Connections kept open (keep-alive) to the upstream. */
  max_connections: z.number().int().min(1).max(4096).default(128),
  /** Requests per minute this deployment is sent at most; beyond it the router uses another. */
  rpm: z.number().int().min(1).optional(),
  /** Tokens (estimated up front) per minute this deployment is sent at most. */
  tpm: z.number().int().min(1).optional(),
  /** Headers sent with every upstream request (an organisation id, a gateway token); config only. */
  headers: z.record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/), z.string().max(4096)).default({}),
  /** Completion tokens assumed for a request without max_tokens (limits reserve from it). */
  default_max_tokens: z.number().int().min(1).max(1_000_000).default(4096),
  /**
   * Embedding models: the most tokens the upstream takes in one input (e.g. 512 for a BERT-style
   * model, 8192 for OpenAI's). Vector stores size their `auto` chunks to fit it and refuse a
   * larger static chunk size. Unset: no bound is assumed. Switchboard counts an upstream's tokens
   * as about four characters each, so leave some margin.
   */
  max_input_tokens: z.number().int().min(1).max(1_048_576).optional(),
};

export const openAiCompatibleDeploymentSchema = z
  .object({
    provider: z.literal("openai-compatible"),
    /** The API root, e.g. https://api.openai.com/v1 or http://localhost:8000/v1. */
    base_url: httpUrl,
    ...upstreamCommon,
    /** Which field carries max_tokens upstream: OpenAI's reasoning models want max_completion_tokens. */
    max_tokens_field: z.enum(["max_tokens", "max_completion_tokens"]).default("max_tokens"),
  })
  .strict();

export const anthropicDeploymentSchema = z
  .object({
    provider: z.literal("anthropic"),
    base_url: httpUrl.default("https://api.anthropic.com"),
    ...upstreamCommon,
    /** The anthropic-version header. */
    api_version: z.string().min(1).default("2023-06-01"),
  })
  .strict();

export const geminiDeploymentSchema = z
  .object({
    provider: z.literal("gemini"),
    base_url: httpUrl.default("https://generativelanguage.googleapis.com/v1beta"),
    ...upstreamCommon,
  })
  .strict();

export const localDeploymentSchema = z
  .object({
    provider: z.literal("local"),
    /** The id of a local model under `models`. */
    model: modelIdSchema,
    ...deploymentCommon,
  })
  .strict();

export const deploymentSchema = z.discriminatedUnion("provider", [
  openAiCompatibleDeploymentSchema,
  anthropicDeploymentSchema,
  geminiDeploymentSchema,
  localDeploymentSchema,
]);

export const routedModelSchema = z
  .object({
    id: modelIdSchema,
    aliases: z.array(modelIdSchema).default([]),
    deployments: z.array(deploymentSchema).min(1, "a routed model needs at least one deployment"),
    /** Models tried in order when every deployment of this one failed. */
    fallbacks: z.array(modelIdSchema).default([]),
    /** weighted: random by weight; least_in_flight: fewest requests in flight per unit of weight. */
    balance: z.enum(["weighted", "least_in_flight"]).default("least_in_flight"),
    /** All attempts (retries, fallbacks and their waits) must start an answer within this. */
    deadline_ms: z.number().int().min(1).max(3_600_000).default(120_000),
    owned_by: z.string().default("switchboard"),
    pricing: pricingSchema.optional(),
  })
  .strict();

export const routerSchema = z
  .object({
    /** Failures in a row that open a deployment's circuit (it gets no traffic for a while). */
    breaker_failures: z.number().int().min(1).max(1000).default(5),
    /** How long an open circuit stays open before one probe request is let through. */
    breaker_cooldown_ms: z.number().int().min(1).max(3_600_000).default(30_000),
    /** First retry delay (exponential backoff with full jitter); a retry-after from the upstream wins. */
    retry_base_ms: z.number().int().min(0).max(600_000).default(250),
    /** The longest retry delay. */
    retry_max_ms: z.number().int().min(0).max(600_000).default(8_000),
    /**
     * The part of each deployment's rpm / tpm caps batch lines may fill; the rest of the minute
     * stays for interactive requests (batch lines wait for the next minute).
     */
    batch_rate_share: z.number().gt(0).max(1).default(0.5),
  })
  .strict();

export type DeploymentConfig = z.infer<typeof deploymentSchema>;

/**
 * How logs, metrics, health reports and the shared circuit state name a model's deployments: the
 * configured `name`, else `<provider>:<model>`, with `@<host>` when another deployment of the model
 * would have the same (replicas of one model at several addresses), and `#<position>` if even that
 * is taken. Configured names must differ (checked when the config is loaded).
 */
export function deploymentNames(deployments: readonly DeploymentConfig[]): string[] {
  const plain = (d: DeploymentConfig) => d.name ?? `${d.provider}:${d.model}`;
  const count = (names: string[], name: string) => names.filter((n) => n === name).length;
  const first = deployments.map(plain);
  const second = deployments.map((d, j) =>
    d.name !== undefined || count(first, first[j] as string) === 1 || d.provider === "local"
      ? (first[j] as string)
      : `${first[j]}@${new URL(d.base_url).host}`,
  );
  return deployments.map((d, j) =>
    d.name !== undefined || count(second, second[j] as string) === 1
      ? (second[j] as string)
      : `${second[j]}#${j}`,
  );
}
export type UpstreamDeploymentConfig = Exclude<DeploymentConfig, { provider: "local" }>;
export type RoutedModelConfig = z.infer<typeof routedModelSchema>;
export type RouterConfig = z.infer<typeof routerSchema>;
