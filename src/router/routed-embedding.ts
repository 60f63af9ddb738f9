import type { Cancellation } from "../core/cancellation.js";
import { invalidRequest } from "../core/errors.js";
import type {
  EmbeddingRequest,
  EmbeddingResult,
  ModelBackend,
  PreparedEmbedding,
} from "../core/generation.js";
import type { RoutedCall, Served } from "./routed-call.js";

/**
 * An embedding request as the router sends it. The answer is one JSON body, not a stream: an
 * attempt is committed only once the whole answer is in, so every failure before that may be retried.
 */
export class RoutedEmbedding implements RoutedCall<PreparedEmbedding, EmbeddingResult> {
  constructor(
    readonly request: EmbeddingRequest,
    readonly reservedTokens: number,
  ) {}

  get batch(): boolean {
    return this.request.priority === "batch";
  }
  get streamed(): boolean {
    return false;
  }

  serves(backend: ModelBackend): boolean {
    return backend.capabilities.embeddings && !!backend.embed && !!backend.prepareEmbedding;
  }

  prepareFor(backend: ModelBackend): Promise<PreparedEmbedding> {
    if (!backend.prepareEmbedding) throw notAnEmbeddingModel();
    return backend.prepareEmbedding(this.request);
  }

  /** A failed embedding answered nothing to count. */
  spent(): number {
    return 0;
  }

  async send(
    backend: ModelBackend,
    prepared: PreparedEmbedding,
    attempts: Cancellation,
    served: Served | undefined,
  ): Promise<EmbeddingResult> {
    if (!backend.embed) throw notAnEmbeddingModel();
    const result = await backend.embed(prepared, attempts);
    // The answer is whole: the deployment's books close here, not at the end of a stream.
    if (served) {
      served.target.inFlight--;
      served.target.state.settle(served.admission, result.promptTokens);
    }
    return result;
  }
}

const notAnEmbeddingModel = () => invalidRequest("This model does not create embeddings.", "model");
