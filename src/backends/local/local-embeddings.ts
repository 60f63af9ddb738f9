import { invalidRequest, unsupportedParameter } from "../../core/errors.js";
import type {
  CostEstimate,
  EmbeddingRequest,
  EmbeddingResult,
  PreparedEmbedding,
} from "../../core/generation.js";
import type { LocalEngine, ModelMetadata } from "./engine.js";

/** How a local embedding model's vectors are finished (the model's config). */
export interface EmbeddingSettings {
  /** Scale every vector to unit length (L2); on by default. */
  normalize: boolean;
  /** The model was trained so that a prefix of its vector is an embedding too (`dimensions` allowed). */
  matryoshka: boolean;
}

/** An embedding request tokenized, wrapped and measured. */
class LocalPreparedEmbedding implements PreparedEmbedding {
  readonly estimate: CostEstimate;

  constructor(
    readonly request: EmbeddingRequest,
    readonly inputs: number[][],
  ) {
    let tokens = 0;
    for (const input of inputs) tokens += input.length;
    this.estimate = { promptTokens: tokens, maxTokensPerChoice: 0, choices: 1, exact: true };
  }
}

/**
 * Embeddings over a LocalEngine loaded in embedding mode: inputs are tokenized here (start/end
 * tokens added as the model's tokenizer wants), checked against the context, embedded by the
 * engine in one call, then truncated to `dimensions` and normalised.
 */
export class LocalEmbedder {
  constructor(
    private readonly engine: LocalEngine,
    private readonly settings: EmbeddingSettings,
    private readonly modelId: string,
  ) {}

  async prepare(req: EmbeddingRequest): Promise<PreparedEmbedding> {
    const meta = this.engine.metadata();
    this.checkDimensions(req.dimensions, meta.embeddingSize);
    const input = req.input;
    const count = input.kind === "text" ? input.texts.length : input.tokens.length;
    const paramOf = req.paramOf ?? ((i: number) => (count === 1 ? "input" : `input[${i}]`));
    // Every item is refused from its length alone first, so a huge body costs no tokenizing.
    if (input.kind === "text" && meta.longestTokenBytes > 0) {
      input.texts.forEach((text, i) => {
        const fewest = Math.ceil(text.length / meta.longestTokenBytes);
        if (fewest >= meta.contextSize) throw tooLong(meta.contextSize, fewest, paramOf(i), true);
      });
    }
    const inputs: number[][] = [];
    for (let i = 0; i < count; i++) {
      const param = paramOf(i);
      const tokens =
        input.kind === "text"
          ? await this.engine.tokenize(input.texts[i] as string, { special: false })
          : checkTokenIds(input.tokens[i] as number[], meta.vocabSize, param);
      const wrapped = wrap(tokens, meta);
      if (wrapped.length === 0) throw invalidRequest(`${param} holds no tokens.`, param, "invalid_value");
      // node-llama-cpp needs one position to spare; llama-server's slot holds contextSize.
      // embeddingInputLimit() below is this same bound, told in plain-text tokens.
      if (wrapped.length >= meta.contextSize) throw tooLong(meta.contextSize, wrapped.length, param, false);
      inputs.push(wrapped);
    }
    return new LocalPreparedEmbedding(req, inputs);
  }

  async embed(prepared: PreparedEmbedding, signal: AbortSignal): Promise<EmbeddingResult> {
    if (!(prepared instanceof LocalPreparedEmbedding)) throw new Error("prepared by another backend");
    const raw = await this.engine.embed(prepared.inputs, signal, prepared.request.priority);
    const dimensions = prepared.request.dimensions;
    const vectors = raw.map((vector) => {
      const kept =
        dimensions !== undefined && dimensions < vector.length ? vector.slice(0, dimensions) : vector;
      return this.settings.normalize ? normalized(kept) : kept;
    });
    return { vectors, promptTokens: prepared.estimate.promptTokens };
  }

  private checkDimensions(dimensions: number | undefined, size: number): void {
    if (dimensions === undefined || dimensions === size) return;
    if (!this.settings.matryoshka) {
      throw unsupportedParameter(
        "dimensions",
        `The model '${this.modelId}' does not support shortened embeddings: its vectors have ${size} dimensions.`,
      );
    }
    if (dimensions > size) {
      throw invalidRequest(
        `dimensions is ${dimensions}, but the model '${this.modelId}' has ${size}.`,
        "dimensions",
        "invalid_value",
      );
    }
  }
}

/**
 * The most plain-text tokens one input may hold: what prepare() lets through once the model's
 * start and end tokens are added and one position is kept spare. Over-long inputs are refused
 * (400 context_length_exceeded), never truncated; vector store chunks are sized to this.
 */
export function embeddingInputLimit(meta: ModelMetadata): number {
  const framing =
    (meta.addBosToken && meta.bosTokenId !== undefined ? 1 : 0) +
    (meta.addEosToken && meta.eosTokenId !== undefined ? 1 : 0);
  return Math.max(0, meta.contextSize - 1 - framing);
}

function tooLong(limit: number, tokens: number, param: string, atLeast: boolean) {
  return invalidRequest(
    `This model's maximum context length is ${limit} tokens, and ${param} needs ${atLeast ? "at least " : ""}${tokens}. Shorten it or split it into several inputs.`,
    param,
    "context_length_exceeded",
  );
}

function checkTokenIds(tokens: number[], vocabSize: number, param: string): number[] {
  if (vocabSize <= 0) return tokens;
  for (const token of tokens) {
    if (token >= vocabSize) {
      throw invalidRequest(
        `${param} holds token id ${token}, but this model's vocabulary has ${vocabSize} tokens.`,
        param,
        "invalid_value",
      );
    }
  }
  return tokens;
}

/** The start and end tokens the model's tokenizer puts around an input, where they are missing. */
function wrap(tokens: number[], meta: ModelMetadata): number[] {
  const out = [...tokens];
  if (meta.addBosToken && meta.bosTokenId !== undefined && out[0] !== meta.bosTokenId)
    out.unshift(meta.bosTokenId);
  if (meta.addEosToken && meta.eosTokenId !== undefined && out.at(-1) !== meta.eosTokenId)
    out.push(meta.eosTokenId);
  return out;
}

/** L2-normalised copy (a zero vector stays zero). */
function normalized(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const out = Float32Array.from(vector);
  if (sum === 0) return out;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) * scale;
  return out;
}
