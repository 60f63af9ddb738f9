import { invalidRequest } from "../../../core/errors.js";
import type {
  BackendCapabilities,
  EmbeddingRequest,
  EmbeddingResult,
  GenerationRequest,
} from "../../../core/generation.js";
import { charsToTokens } from "../prompt-estimate.js";
import type { ProviderAdapter, StreamDecoder, UpstreamCall } from "../provider-adapter.js";
import { upstreamProtocolError } from "../upstream-errors.js";
import { GeminiChunkDecoder } from "./chunk-decoder.js";
import { geminiGenerateBody } from "./generate-request.js";

const CAPABILITIES: BackendCapabilities = {
  chat: true,
  completions: false,
  embeddings: true,
  tools: true,
  structuredOutputs: true,
  vision: true,
  audioInput: true,
  fileInput: false,
  logprobs: false,
};

/**
 * The model's resource name: `models/<name>` unless the config already names a resource
 * (`models/…`, `tunedModels/…`). Each segment is escaped; the name comes from config only.
 */
function modelPath(upstreamModel: string): string {
  const name = /^(models|tunedModels)\//.test(upstreamModel) ? upstreamModel : `models/${upstreamModel}`;
  return `/${name.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * Google's Gemini API (generativelanguage): streamGenerateContent as server-sent events. The key
 * travels in the x-goog-api-key header, never in the URL, so it cannot end up in a logged URL.
 */
export class GeminiAdapter implements ProviderAdapter {
  readonly provider = "gemini";
  readonly capabilities = CAPABILITIES;

  authHeaders(apiKey: string | undefined): Record<string, string> {
    return apiKey ? { "x-goog-api-key": apiKey } : {};
  }

  generationCall(req: GenerationRequest, upstreamModel: string): UpstreamCall {
    return {
      path: `${modelPath(upstreamModel)}:streamGenerateContent`,
      query: "?alt=sse",
      body: geminiGenerateBody(req),
    };
  }

  decoder(req: GenerationRequest): StreamDecoder {
    return new GeminiChunkDecoder(req.n, req.constraint?.tools?.parallel ?? true);
  }

  embeddingCall(req: EmbeddingRequest, upstreamModel: string): UpstreamCall {
    if (req.input.kind !== "text") {
      throw invalidRequest("This model embeds text only, not token ids.", "input");
    }
    const path = modelPath(upstreamModel);
    const model = path.slice(1);
    return {
      path: `${path}:batchEmbedContents`,
      body: {
        requests: req.input.texts.map((text) => ({
          model,
          content: { parts: [{ text }] },
          ...(req.dimensions !== undefined && { outputDimensionality: req.dimensions }),
        })),
      },
    };
  }

  readEmbeddings(body: unknown, req: EmbeddingRequest): EmbeddingResult {
    const embeddings = (body as { embeddings?: { values?: unknown }[] } | null)?.embeddings;
    const texts = req.input.kind === "text" ? req.input.texts : [];
    if (!Array.isArray(embeddings) || embeddings.length !== texts.length) {
      throw upstreamProtocolError("embeddings in an unexpected shape");
    }
    const vectors = embeddings.map((item) => {
      if (!Array.isArray(item.values)) throw upstreamProtocolError("embeddings in an unexpected shape");
      return Float32Array.from(item.values as number[]);
    });
    // batchEmbedContents reports no token counts: the input is estimated as everywhere else.
    const promptTokens = texts.reduce((sum, text) => sum + charsToTokens(text.length), 0);
    return { vectors, promptTokens };
  }

  errorMessage(body: unknown): string | undefined {
    const error = (body as { error?: unknown } | null)?.error;
    const message = (error as { message?: unknown } | undefined)?.message;
    return typeof message === "string" ? message : undefined;
  }
}
