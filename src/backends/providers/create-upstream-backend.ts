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

/** A backend for one configured upstream deployment. */
export function createUpstreamBackend(config: UpstreamDeploymentConfig): UpstreamBackend {
  const adapter = adapterFor(config);
  const client = new UpstreamClient({
    baseUrl: config.base_url,
    headers: { ...config.headers, ...adapter.authHeaders(config.api_key) },
    secrets: config.api_key ? [config.api_key] : [],
    maxConnections: config.max_connections,
    timeoutMs: config.timeout_ms,
    idleTimeoutMs: config.idle_timeout_ms,
    errorMessage: (body) => adapter.errorMessage(body),
  });
  return new UpstreamBackend(adapter, client, {
    upstreamModel: config.model,
    defaultMaxTokens: config.default_max_tokens,
    ...(config.max_input_tokens === undefined ? {} : { maxInputTokens: config.max_input_tokens }),
  });
}
