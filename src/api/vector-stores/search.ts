import type { Principal } from "../../auth/principal.js";
import { unsupportedParameter } from "../../core/errors.js";
import type { GenerationPart } from "../../core/generation.js";
import { collectGeneration, type GenerationService } from "../../generation/service.js";
import type {
  ChunkHit,
  ChunkIndex,
  FileAttributes,
  StoredVectorStore,
  VectorStoreRepository,
} from "../../storage/repositories/vector-store-types.js";
import { matchesFilter } from "./filters.js";
import type { Filter } from "./schema.js";

export interface SearchResult {
  vectorStoreId: string;
  fileId: string;
  filename: string;
  attributes: FileAttributes | null;
  chunkId: number;
  text: string;
  /** 0..1, higher is better. */
  score: number;
}

export interface SearchOptions {
  queries: readonly string[];
  maxResults: number;
  filters?: Filter;
  /** `none`: the vector ranking alone (cosine scores); otherwise vector and keyword rankings fused. */
  ranker: "none" | "auto" | "default-2024-11-15";
  scoreThreshold: number;
  /** Weights of the vector and keyword rankings in the fusion (default 1 and 1). */
  weights?: { embedding: number; text: number };
  /** The API the search came through, for usage records. */
  endpoint: string;
}

/** Reciprocal rank fusion's constant: a hit's share is weight / (RRF_K + rank). */
const RRF_K = 60;
const MAX_TERMS = 32;

/**
 * Hybrid retrieval: every query is embedded with the store's own embedding model and looked up
 * in the vector index, its words in the keyword index; the rankings are fused by reciprocal rank.
 * A fused score is scaled so that a chunk ranked first by every list scores 1.
 */
export class VectorStoreSearch {
  constructor(
    private readonly deps: {
      stores: VectorStoreRepository;
      chunks: ChunkIndex;
      generation: GenerationService;
      /** The chat model that rewrites queries (rewrite_query); none = rewriting is refused. */
      rewriteModel?: string;
    },
  ) {}

  async search(
    principal: Principal,
    stores: readonly StoredVectorStore[],
    options: SearchOptions,
    signal: AbortSignal,
  ): Promise<SearchResult[]> {
    const candidates = Math.min(200, Math.max(options.maxResults * 5, 50));
    const vectors = await this.embedQueries(principal, stores, options, signal);
    const results: SearchResult[] = [];
    for (const store of stores) {
      const files = await this.deps.stores.filesWithStatus(store.projectId, store.id, "completed");
      const allowed = options.filters
        ? files.filter((f) => matchesFilter(options.filters as Filter, f.attributes))
        : files;
      if (allowed.length === 0) continue;
      const fileIds = allowed.length === files.length ? null : allowed.map((f) => f.fileId);
      const lists: { hits: ChunkHit[]; weight: number }[] = [];
      const weights = options.weights ?? { embedding: 1, text: 1 };
      for (const vector of vectors.get(store.embeddingModel) ?? []) {
        const hits = await this.deps.chunks.vectorSearch(store.id, vector, fileIds, candidates);
        lists.push({ hits, weight: weights.embedding });
      }
      if (options.ranker !== "none") {
        for (const query of options.queries) {
          const hits = await this.deps.chunks.keywordSearch(
            store.id,
            keywordTerms(query),
            fileIds,
            candidates,
          );
          lists.push({ hits, weight: weights.text });
        }
      }
      const scored =
        options.ranker === "none"
          ? bestCosine(lists.map((l) => l.hits))
          : fuse(lists, options.queries.length * (weights.embedding + weights.text));
      const kept = [...scored]
        .filter(([, score]) => score >= options.scoreThreshold && score > 0)
        .sort((a, b) => b[1] - a[1] || a[0] - b[0])
        .slice(0, options.maxResults);
      const byId = new Map(allowed.map((f) => [f.fileId, f]));
      const chunks = new Map((await this.deps.chunks.chunks(kept.map(([id]) => id))).map((c) => [c.id, c]));
      for (const [chunkId, score] of kept) {
        const chunk = chunks.get(chunkId);
        const file = chunk && byId.get(chunk.fileId);
        if (!chunk || !file) continue;
        results.push({
          vectorStoreId: store.id,
          fileId: file.fileId,
          filename: file.filename,
          attributes: file.attributes,
          chunkId,
          text: chunk.text,
          score,
        });
      }
    }
    return results.sort((a, b) => b.score - a.score).slice(0, options.maxResults);
  }

  /** One embedding call per embedding model among the stores, all queries at once. */
  private async embedQueries(
    principal: Principal,
    stores: readonly StoredVectorStore[],
    options: SearchOptions,
    signal: AbortSignal,
  ): Promise<Map<string, Float32Array[]>> {
    const out = new Map<string, Float32Array[]>();
    for (const model of new Set(stores.map((s) => s.embeddingModel))) {
      const embedded = await this.deps.generation.embed({
        principal,
        endpoint: options.endpoint,
        model,
        toRequest: (deployment) => ({
          model: deployment.id,
          input: { kind: "text", texts: [...options.queries] },
          paramOf: (i) => (options.queries.length === 1 ? "query" : `query[${i}]`),
        }),
        signal,
      });
      out.set(model, embedded.result.vectors);
    }
    return out;
  }

  /** The query as a short search query, written by the configured chat model; 400 when there is none. */
  async rewrite(principal: Principal, query: string, signal: AbortSignal): Promise<string> {
    const model = this.deps.rewriteModel;
    if (!model) {
      throw unsupportedParameter(
        "rewrite_query",
        "rewrite_query needs a model to rewrite queries with, and this server has none configured (vector_stores.rewrite_model).",
      );
    }
    const generation = await this.deps.generation.start({
      principal,
      endpoint: "vector_stores.search",
      capability: "chat",
      model,
      toRequest: (deployment) => ({
        model: deployment.id,
        input: {
          kind: "chat",
          messages: [
            {
              role: "system",
              content: [
                {
                  type: "text",
                  text: "Rewrite the user's question as a short keyword search query. Answer with the query only, on one line.",
                },
              ],
            },
            { role: "user", content: [{ type: "text", text: query }] },
          ],
        },
        sampling: { temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0 },
        maxTokens: 64,
        stop: ["\n"],
        n: 1,
      }),
      signal,
    });
    const text = await collectGeneration(generation, signal, collectText);
    const rewritten = text.trim().slice(0, 1024);
    return rewritten === "" ? query : rewritten;
  }
}

function collectText(parts: readonly GenerationPart[]): string {
  let text = "";
  for (const part of parts) if (part.type === "text" && part.choice === 0) text += part.text;
  return text;
}

/** The words of a query, lower-cased and deduplicated, as keyword search terms. */
export function keywordTerms(query: string): string[] {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return [...new Set(words.map((w) => w.slice(0, 64)))].slice(0, MAX_TERMS);
}

/** Reciprocal rank fusion; `total` is the sum of the lists' weights, so a chunk first everywhere scores 1. */
function fuse(
  lists: readonly { hits: readonly ChunkHit[]; weight: number }[],
  total: number,
): Map<number, number> {
  const scores = new Map<number, number>();
  const best = total / (RRF_K + 1);
  if (best <= 0) return scores;
  for (const { hits, weight } of lists) {
    hits.forEach((hit, rank) => {
      scores.set(hit.chunkId, (scores.get(hit.chunkId) ?? 0) + weight / (RRF_K + rank + 1));
    });
  }
  for (const [id, score] of scores) scores.set(id, Math.min(1, score / best));
  return scores;
}

/** The best cosine similarity each chunk reached for any query (negative similarity counts as 0). */
function bestCosine(lists: readonly (readonly ChunkHit[])[]): Map<number, number> {
  const scores = new Map<number, number>();
  for (const hits of lists)
    for (const hit of hits)
      scores.set(hit.chunkId, Math.max(scores.get(hit.chunkId) ?? 0, Math.min(1, hit.score)));
  return scores;
}
