import type {
  BackendCapabilities,
  EmbeddingRequest,
  EmbeddingResult,
  GenerationRequest,
} from "../../../core/generation.js";
import type { ProviderAdapter, StreamDecoder, UpstreamCall } from "../provider-adapter.js";
import { upstreamProtocolError } from "../upstream-errors.js";
import { openAiGenerationBody } from "./chat-request.js";
import { OpenAiChunkDecoder } from "./chunk-decoder.js";

/** Whatever the OpenAI API carries, this upstream is asked for; what it cannot do, it refuses. */
const CAPABILITIES: BackendCapabilities = {
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

/** Any server that speaks the OpenAI API: the translation is nearly the identity. */
export class OpenAiCompatibleAdapter implements ProviderAdapter {
  readonly provider = "openai-compatible";
  readonly capabilities = CAPABILITIES;

  constructor(private readonly maxTokensField: "max_tokens" | "max_completion_tokens") {}

  authHeaders(apiKey: string | undefined): Record<string, string> {
    return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  }

  generationCall(req: GenerationRequest, upstreamModel: string): UpstreamCall {
    // Building the body refuses what cannot be sent (a file id from this server's store).
    return {
      path: req.input.kind === "chat" ? "/chat/completions" : "/completions",
      body: openAiGenerationBody(req, { upstreamModel, maxTokensField: this.maxTokensField }),
    };
  }

  decoder(req: GenerationRequest): StreamDecoder {
    const prompts = req.input.kind === "prompts" ? req.input.prompts.length : 1;
    return new OpenAiChunkDecoder(prompts * req.n);
  }

  embeddingCall(req: EmbeddingRequest, upstreamModel: string): UpstreamCall {
    return {
      path: "/embeddings",
      body: {
        model: upstreamModel,
        input: req.input.kind === "text" ? req.input.texts : req.input.tokens,
        encoding_format: "float",
        ...(req.dimensions !== undefined && { dimensions: req.dimensions }),
      },
    };
  }

  readEmbeddings(body: unknown, req: EmbeddingRequest): EmbeddingResult {
    const answer = body as {
      data?: { index?: number; embedding?: unknown }[];
      usage?: { prompt_tokens?: number };
    } | null;
    const expected = req.input.kind === "text" ? req.input.texts.length : req.input.tokens.length;
    const vectors: Float32Array[] = new Array(expected);
    const data = answer?.data;
    if (!Array.isArray(data)) throw upstreamProtocolError("embeddings in an unexpected shape");
    for (const [i, item] of data.entries()) {
      if (!item || typeof item !== "object") throw upstreamProtocolError("embeddings in an unexpected shape");
      const index = item.index ?? i;
      if (!Array.isArray(item.embedding) || index < 0 || index >= expected) {
        throw upstreamProtocolError("embeddings in an unexpected shape");
      }
      vectors[index] = Float32Array.from(item.embedding as number[]);
    }
    if (vectors.filter(Boolean).length !== expected) throw upstreamProtocolError("too few embeddings");
    return { vectors, promptTokens: answer?.usage?.prompt_tokens ?? 0 };
  }

  errorMessage(body: unknown): string | undefined {
    const error = (body as { error?: unknown } | null)?.error;
    if (typeof error === "string") return error;
    const message = (error as { message?: unknown } | undefined)?.message;
    return typeof message === "string" ? message : undefined;
  }
}
