import type {
  BackendCapabilities,
  EmbeddingRequest,
  EmbeddingResult,
  GenerationPart,
  GenerationRequest,
} from "../../core/generation.js";
import type { EventSourceMessage } from "./sse-events.js";

/** A request to send upstream: a path under the base URL and a JSON body. */
export interface UpstreamCall {
  path: string;
  body: unknown;
  /** Appended to the path as it is (built from config, never from a request). */
  query?: string;
}

/**
 * Reads one answer's events into parts. Stateful per answer: tool-call pieces and finish reasons
 * often need what an earlier event said.
 */
export interface StreamDecoder {
  /** Parts for one event. Throws our error when the upstream reports one mid-stream. */
  read(event: EventSourceMessage): GenerationPart[];
  /** True once the upstream sent its last event: nothing after it is read. */
  readonly complete: boolean;
  /**
   * At the end of the stream: parts still owed (a usage summary). Throws when the answer is not
   * whole (the upstream broke off), so a cut answer never passes for a finished one.
   */
  finish(): GenerationPart[];
}

/**
 * What makes a provider a provider: a translation table from our requests to its wire format and
 * from its event stream back to parts. The backend around it (connections, timeouts, errors,
 * usage accounting) is the same for all.
 */
export interface ProviderAdapter {
  readonly provider: string;
  readonly capabilities: BackendCapabilities;
  /** Headers that authenticate (and version) every request. */
  authHeaders(apiKey: string | undefined): Record<string, string>;
  /**
   * The streaming request for a chat or a raw prompt; refuses, with a 400 naming the field, what
   * this provider cannot do. Built once per attempt, when the request is prepared.
   */
  generationCall(req: GenerationRequest, upstreamModel: string, defaultMaxTokens: number): UpstreamCall;
  decoder(req: GenerationRequest): StreamDecoder;
  embeddingCall?(req: EmbeddingRequest, upstreamModel: string): UpstreamCall;
  readEmbeddings?(body: unknown, req: EmbeddingRequest): EmbeddingResult;
  /** The message in one of the provider's error bodies. */
  errorMessage(body: unknown): string | undefined;
}
