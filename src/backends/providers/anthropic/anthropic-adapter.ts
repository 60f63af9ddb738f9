import type { BackendCapabilities, GenerationRequest } from "../../../core/generation.js";
import type { ProviderAdapter, StreamDecoder, UpstreamCall } from "../provider-adapter.js";
import { AnthropicEventDecoder } from "./event-decoder.js";
import { anthropicMessagesBody, formatToolName } from "./messages-request.js";

const CAPABILITIES: BackendCapabilities = {
  chat: true,
  completions: false,
  embeddings: false,
  tools: true,
  structuredOutputs: true,
  vision: true,
  audioInput: false,
  fileInput: false,
  logprobs: false,
};

/** Anthropic's Messages API. */
export class AnthropicAdapter implements ProviderAdapter {
  readonly provider = "anthropic";
  readonly capabilities = CAPABILITIES;

  constructor(private readonly apiVersion: string) {}

  authHeaders(apiKey: string | undefined): Record<string, string> {
    return { "anthropic-version": this.apiVersion, ...(apiKey && { "x-api-key": apiKey }) };
  }

  generationCall(req: GenerationRequest, upstreamModel: string, defaultMaxTokens: number): UpstreamCall {
    return { path: "/v1/messages", body: anthropicMessagesBody(req, upstreamModel, defaultMaxTokens) };
  }

  decoder(req: GenerationRequest): StreamDecoder {
    return new AnthropicEventDecoder(formatToolName(req));
  }

  errorMessage(body: unknown): string | undefined {
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
    return typeof message === "string" ? message : undefined;
  }
}
