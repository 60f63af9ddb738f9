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
import { charsToTokens, estimatePromptTokens } from "./prompt-estimate.js";
import type { ProviderAdapter, UpstreamCall } from "./provider-adapter.js";
import { SseReader } from "./sse-events.js";
import type { UpstreamClient } from "./upstream-client.js";
import { upstreamTransportError } from "./upstream-errors.js";

export interface UpstreamBackendOptions {
  /** The model name the upstream knows. */
  upstreamModel: string;
  /** Completion tokens reserved for a request without max_tokens. */
  defaultMaxTokens: number;
  /** Embedding models: the most tokens one input may hold (the deployment's max_input_tokens). */
  maxInputTokens?: number;
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

  async prepare(request: GenerationRequest): Promise<PreparedGeneration> {
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

  async *generate(prepared: PreparedGeneration, signal: AbortSignal): AsyncGenerator<GenerationPart> {
    const req = prepared.request;
    const call = (prepared as UpstreamPreparedGeneration).call;
    this.inFlight++;
    try {
      const response = await this.client.post(call.path, call.body, signal, call.query);
      const progress = prepared.progress;
      // Sent and accepted: the prompt counts as consumed from here, until the upstream says more.
      progress.promptTokens = prepared.estimate.promptTokens;
      const decoder = this.adapter.decoder(req);
      const reader = new SseReader();
      let whole = false;
      try {
        // One loop over the body: each chunk's events are decoded and their parts yielded here.
        read: for (let chunk = await response.read(); chunk; chunk = await response.read()) {
          for (const event of reader.feed(chunk)) {
            for (const part of counted(decoder.read(event), progress)) yield part;
            if (decoder.complete) break read;
          }
        }
        for (const event of decoder.complete ? [] : reader.end()) {
          for (const part of counted(decoder.read(event), progress)) yield part;
          if (decoder.complete) break;
        }
        whole = !signal.aborted;
      } catch (err) {
        if (signal.aborted || isServiceError(err)) throw err;
        throw upstreamTransportError(err);
      } finally {
        // A consumer that stops early (the client left) ends here too: then the body is dropped.
        if (whole) response.release();
        else response.abandon();
      }
      if (signal.aborted) return;
      for (const part of decoder.finish()) {
        countProgress(progress, part);
        yield part;
      }
    } finally {
      this.inFlight--;
    }
  }

  async prepareEmbedding(req: EmbeddingRequest): Promise<PreparedEmbedding> {
    return { request: req, estimate: estimateEmbedding(req) };
  }

  async embed(prepared: PreparedEmbedding, signal: AbortSignal): Promise<EmbeddingResult> {
    const req = prepared.request;
    const { embeddingCall, readEmbeddings } = this.adapter;
    if (!embeddingCall || !readEmbeddings) {
      throw invalidRequest(`This model does not create embeddings.`, "model");
    }
    const call = embeddingCall.call(this.adapter, req, this.options.upstreamModel);
    this.inFlight++;
    try {
      const body = await this.client.postJson(call.path, call.body, signal);
      return readEmbeddings.call(this.adapter, body, req);
    } finally {
      this.inFlight--;
    }
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

/** An event's parts, counted into the live usage before they go out. */
function counted(parts: GenerationPart[], progress: UsageCounts): GenerationPart[] {
  for (const part of parts) countProgress(progress, part);
  return parts;
}

function countProgress(progress: UsageCounts, part: GenerationPart): void {
  if (part.type === "usage") {
    progress.promptTokens = part.promptTokens;
    progress.completionTokens = part.completionTokens;
    progress.cachedTokens = part.cachedTokens;
  } else if (part.type === "text" || part.type === "reasoning" || part.type === "refusal") {
    progress.completionTokens += charsToTokens(part.text.length);
  } else if (part.type === "tool-call") {
    progress.completionTokens += charsToTokens(part.argumentsDelta.length);
  }
}

function isServiceError(err: unknown): boolean {
  return (err as { name?: unknown } | undefined)?.name === "ServiceError";
}
