import { invalidRequest } from "../../src/core/errors.js";
import type {
  EmbeddingRequest,
  EmbeddingResult,
  GenerationPart,
  ModelBackend,
  PreparedEmbedding,
  PreparedGeneration,
} from "../../src/core/generation.js";
import type { Deployment } from "../../src/router/model-registry.js";
import { ALL_CAPABILITIES } from "./scripted-backend.js";

/** The hashed vector's size. */
export const HASH_DIMENSIONS = 256;

/**
 * A deterministic embedding model for ranking tests: a text's vector is its words hashed into
 * buckets (bag of words), unit length. Texts that share words are close, so a search ranks by
 * meaning as far as words go; random-weight models cannot. It has no tokenizer, like an upstream
 * embedding model, so chunking counts about four characters a token for it.
 */
export class HashEmbeddingBackend implements ModelBackend {
  readonly capabilities = { ...ALL_CAPABILITIES, chat: false, completions: false, embeddings: true };
  /** Texts embedded so far (ingestion and queries), for tests that count calls. */
  readonly embedded: string[] = [];

  /**
   * `inputLimit`: what embeddingInputLimit() answers at each call (undefined: not known yet); an
   * input over a known limit (at four characters a token, as chunking counts for it) is refused
   * as a real model refuses one. None: no bound.
   */
  constructor(private readonly inputLimit?: () => number | undefined) {}

  embeddingInputLimit(): number | undefined {
    return this.inputLimit ? this.inputLimit() : Number.POSITIVE_INFINITY;
  }

  async prepare(): Promise<PreparedGeneration> {
    throw new Error("embedding only");
  }

  // biome-ignore lint/correctness/useYield: embedding only
  async *generate(): AsyncGenerator<GenerationPart> {
    throw new Error("embedding only");
  }

  async prepareEmbedding(request: EmbeddingRequest): Promise<PreparedEmbedding> {
    const texts = request.input.kind === "text" ? request.input.texts : [];
    const limit = this.inputLimit?.();
    texts.forEach((text, i) => {
      if (limit !== undefined && Math.ceil(text.length / 4) > limit)
        throw invalidRequest(
          `This model's maximum input is ${limit} tokens.`,
          `input[${i}]`,
          "context_length_exceeded",
        );
    });
    const tokens = texts.reduce((sum, t) => sum + words(t).length, 0);
    return { request, estimate: { promptTokens: tokens, maxTokensPerChoice: 0, choices: 1, exact: true } };
  }

  async embed(prepared: PreparedEmbedding): Promise<EmbeddingResult> {
    const texts = prepared.request.input.kind === "text" ? prepared.request.input.texts : [];
    this.embedded.push(...texts);
    return { vectors: texts.map(hashVector), promptTokens: prepared.estimate.promptTokens };
  }

  async ready(): Promise<void> {}
  isReady(): boolean {
    return true;
  }
  health() {
    return { serving: true, loaded: true };
  }
  stats() {
    return { slots: 1, busySlots: 0, queued: 0 };
  }
  async close(): Promise<void> {}
}

function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

export function hashVector(text: string): Float32Array {
  const v = new Float32Array(HASH_DIMENSIONS);
  for (const word of words(text)) {
    let h = 2166136261;
    for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 16777619);
    const bucket = (h >>> 0) % HASH_DIMENSIONS;
    v[bucket] = (v[bucket] as number) + 1;
  }
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / norm;
  return v;
}

export function hashEmbedDeployment(id: string, backend = new HashEmbeddingBackend()): Deployment {
  return {
    id,
    aliases: [],
    ownedBy: "test",
    created: 0,
    systemFingerprint: "fp_hash",
    backend,
    loadAtStart: false,
  };
}
