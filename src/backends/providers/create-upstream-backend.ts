import type { UpstreamDeploymentConfig } from "../../config/routed-model-schema.js";
import { AnthropicAdapter } from "./anthropic/anthropic-adapter.js";
import { GeminiAdapter } from "./gemini/gemini-adapter.js";
import { OpenAiCompatibleAdapter } from "./openai-compatible/openai-adapter.js";
import type { ProviderAdapter } from "./provider-adapter.js";
import { UpstreamBackend } from "./upstream-backend.js";
import { UpstreamClient } from "./upstream-client.js";

/** The adapter that translates for a deployment's provider. */
function adapterFor(config: UpstreamDeploymentConfig): ProviderAdapter {
  switch (config.provider) {
    case "openai-compatible":
      return new OpenAiCompatibleAdapter(config.max_tokens_field);
    case "anthropic":
      return new AnthropicAdapter(config.api_version);
    case "gemini":
      return new GeminiAdapter();
  }
}

/**
 * Configured header values shorter than this are not taken for secrets: a version or a flag
 * ("2", "true") would blank the same characters out of every upstream message, and a value that
 * short keeps nothing safe.
 */
const MIN_HEADER_SECRET_LENGTH = 8;

/**
 * What an upstream may echo back that must never reach a client, a log or a metric: the key and
 * the values of the configured headers (a gateway token is as secret as a key). Longest first, so
 * a secret that contains another is taken out whole.
 */
function deploymentSecrets(config: UpstreamDeploymentConfig): string[] {
  const headerValues = Object.values(config.headers).filter((v) => v.length >= MIN_HEADER_SECRET_LENGTH);
  const secrets = new Set([...(config.api_key ? [config.api_key] : []), ...headerValues]);
  return [...secrets].sort((a, b) => b.length - a.length);
}

/** A backend for one configured upstream deployment. */
export function createUpstreamBackend(config: UpstreamDeploymentConfig): UpstreamBackend {
  const adapter = adapterFor(config);
  const secrets = deploymentSecrets(config);
  const client = new UpstreamClient({
    baseUrl: config.base_url,
    headers: { ...config.headers, ...adapter.authHeaders(config.api_key) },
    secrets,
    maxConnections: config.max_connections,
    timeoutMs: config.timeout_ms,
    idleTimeoutMs: config.idle_timeout_ms,
    errorMessage: (body) => adapter.errorMessage(body),
  });
  return new UpstreamBackend(adapter, client, {
    upstreamModel: config.model,
    defaultMaxTokens: config.default_max_tokens,
    secrets,
    ...(config.max_input_tokens === undefined ? {} : { maxInputTokens: config.max_input_tokens }),
  });
}
