import type { Cancellation } from "../../core/cancellation.js";
import { invalidRequest } from "../../core/errors.js";
import type {
  BackendCapabilities,
  BackendHealth,
  BackendStats,
  CostEstimate,
  EmbeddingRequest,
  EmbeddingResult,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedEmbedding,
  PreparedGeneration,
  UsageCounts,
} from "../../core/generation.js";
import { estimateEmbedding } from "../../core/token-estimate.js";
import { estimatePromptTokens } from "./prompt-estimate.js";
import type { ProviderAdapter, StreamDecoder, UpstreamCall } from "./provider-adapter.js";
import { redactingDecoder } from "./secret-redaction.js";
import type { UpstreamClient } from "./upstream-client.js";
import { upstreamProtocolError } from "./upstream-errors.js";
import { UpstreamParts } from "./upstream-parts.js";

export interface UpstreamBackendOptions {
  /** The model name the upstream knows. */
  upstreamModel: string;
  /** Completion tokens reserved for a request without max_tokens. */
  defaultMaxTokens: number;
  /** Embedding models: the most tokens one input may hold (the deployment's max_input_tokens). */
  maxInputTokens?: number;
  /** What must never reach a message: the key and the configured header values (longest first). */
  secrets: readonly string[];
}

class UpstreamPreparedGeneration implements PreparedGeneration {
  readonly progress: UsageCounts = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  constructor(
    readonly request: GenerationRequest,
    readonly estimate: CostEstimate,
    /** The upstream request, built (and checked) once. */
    readonly call: UpstreamCall,
  ) {}
}

interface UpstreamPreparedEmbedding extends PreparedEmbedding {
  /** The upstream request, built (and checked) once. */
  readonly call: UpstreamCall;
}

const notAnEmbeddingModel = () => invalidRequest("This model does not create embeddings.", "model");

/**
 * A model served by an upstream provider. The provider's adapter translates; this class owns
 * what every provider shares: one streaming request per generation (a non-streaming answer is the
 * stream collected, so the two never disagree), timeouts, error mapping and usage.
 */
export class UpstreamBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities;
  private inFlight = 0;

  constructor(
    private readonly adapter: ProviderAdapter,
    private readonly client: UpstreamClient,
    private readonly options: UpstreamBackendOptions,
  ) {
    this.capabilities = adapter.capabilities;
  }

  prepare(request: GenerationRequest): PreparedGeneration {
    // Building the upstream's request is what refuses what the provider cannot do; it is sent as built.
    const call = this.adapter.generationCall(
      request,
      this.options.upstreamModel,
      this.options.defaultMaxTokens,
    );
    const prompts = request.input.kind === "prompts" ? request.input.prompts.length : 1;
    return new UpstreamPreparedGeneration(
      request,
      {
        promptTokens: estimatePromptTokens(request),
        maxTokensPerChoice: request.maxTokens ?? this.options.defaultMaxTokens,
        choices: prompts * request.n,
        exact: false,
      },
      call,
    );
  }

  generate(prepared: PreparedGeneration, cancel: Cancellation): AsyncIterableIterator<GenerationPart> {
    const call = (prepared as UpstreamPreparedGeneration).call;
    return new UpstreamParts({
      send: () => this.client.post(call.path, call.body, cancel, call.query),
      decoder: this.decoderFor(prepared.request),
      progress: prepared.progress,
      promptTokens: prepared.estimate.promptTokens,
      cancel,
      started: () => {
        this.inFlight++;
      },
      ended: () => {
        this.inFlight--;
      },
    });
  }

  async prepareEmbedding(req: EmbeddingRequest): Promise<PreparedEmbedding> {
    // As for generation: building the upstream's request refuses what the provider cannot embed
    // (Gemini and token ids), before anything is sent, so a router can pass this deployment over.
    if (!this.adapter.embeddingCall || !this.adapter.readEmbeddings) throw notAnEmbeddingModel();
    const call = this.adapter.embeddingCall(req, this.options.upstreamModel);
    const prepared: UpstreamPreparedEmbedding = { request: req, estimate: estimateEmbedding(req), call };
    return prepared;
  }

  async embed(prepared: PreparedEmbedding, cancel: Cancellation): Promise<EmbeddingResult> {
    const req = prepared.request;
    const { readEmbeddings } = this.adapter;
    if (!readEmbeddings) throw notAnEmbeddingModel();
    const call = (prepared as UpstreamPreparedEmbedding).call;
    this.inFlight++;
    try {
      const body = await this.client.postJson(call.path, call.body, cancel).catch((err: unknown) => {
        // A 200 whose body does not parse is the upstream's fault (a 502 another attempt may get past), not ours.
        throw err instanceof SyntaxError ? upstreamProtocolError("embeddings that are not JSON") : err;
      });
      return readEmbeddings.call(this.adapter, body, req);
    } finally {
      this.inFlight--;
    }
  }

  private decoderFor(request: GenerationRequest): StreamDecoder {
    const decoder = this.adapter.decoder(request);
    // Errors before the stream began were cleaned by the client; these come from inside the stream.
    return this.options.secrets.length > 0 ? redactingDecoder(decoder, this.options.secrets) : decoder;
  }

  embeddingInputLimit(): number {
    return this.options.maxInputTokens ?? Number.POSITIVE_INFINITY;
  }

  async ready(): Promise<void> {}

  isReady(): boolean {
    return true;
  }

  health(): BackendHealth {
    return { loaded: true, serving: true };
  }

  stats(): BackendStats {
    return { slots: 0, busySlots: this.inFlight, queued: 0 };
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
