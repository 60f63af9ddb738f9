/**
 * Generates small random-weight llama-architecture GGUF models that node-llama-cpp can load: chat
 * models, and embedding models (the same architecture with a pooling type in the header).
 *
 * Nothing can be downloaded here, so tests and benchmarks use these: the weights are noise, but the shapes,
 * tokenizer and chat template are real enough to exercise loading, tokenization, sampling and ChatML
 * generation end to end. Output is a pure function of (preset, weightType, seed).
 */
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { GgmlType, type GgufTensorSpec, type GgufValue, gguf, writeGguf } from "./gguf-writer.js";

export type ModelPreset = "tiny" | "smollm2-135m" | "embed-tiny" | "embed-small";

/** How an embedding model pools its token states into one vector (llama.cpp's `<arch>.pooling_type`). */
export type EmbeddingPooling = "mean" | "cls" | "last";

/** llama.cpp's llama_pooling_type ids. */
export const POOLING_TYPE_IDS: Readonly<Record<EmbeddingPooling, number>> = { mean: 1, cls: 2, last: 3 };
export type WeightType = "f16" | "q8_0";

export interface ModelHyperparams {
  name: string;
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  vocabSize: number;
  /** Set for embedding models: written as `llama.pooling_type`, and no chat template. */
  pooling?: EmbeddingPooling;
}

export const MODEL_PRESETS: Readonly<Record<ModelPreset, ModelHyperparams>> = {
  tiny: {
    name: "switchboard-tiny-random",
    contextLength: 2048,
    embeddingLength: 64,
    blockCount: 2,
    feedForwardLength: 128,
    headCount: 4,
    headCountKv: 2,
    vocabSize: 512,
  },
  "smollm2-135m": {
    name: "switchboard-smollm2-135m-random",
    contextLength: 8192,
    embeddingLength: 576,
    blockCount: 30,
    feedForwardLength: 1536,
    headCount: 9,
    headCountKv: 3,
    vocabSize: 49152,
  },
  // Embedding models: the llama architecture with a pooling type in the header, which llama.cpp
  // (in-process through node-llama-cpp, and llama-server with --embeddings) loads and embeds with.
  "embed-tiny": {
    name: "switchboard-embed-tiny-random",
    contextLength: 512,
    embeddingLength: 64,
    blockCount: 2,
    feedForwardLength: 128,
    headCount: 4,
    headCountKv: 4,
    vocabSize: 512,
    pooling: "mean",
  },
  // bge-small-en's shape (384 wide, 12 layers, 12 heads, 1536 FFN, 512 tokens, ~30k vocabulary).
  "embed-small": {
    name: "switchboard-embed-small-random",
    contextLength: 512,
    embeddingLength: 384,
    blockCount: 12,
    feedForwardLength: 1536,
    headCount: 12,
    headCountKv: 12,
    vocabSize: 30522,
    pooling: "mean",
  },
};

export const MODEL_PRESET_NAMES = Object.keys(MODEL_PRESETS) as ModelPreset[];

/** Fixed ids of the special tokens every generated vocab starts with. */
export const SPECIAL_TOKENS = { unk: 0, bos: 1, eos: 2, imStart: 3, imEnd: 4 } as const;

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface MakeModelOptions {
  preset: ModelPreset;
  out: string;
  weightType?: WeightType;
  seed?: number;
  /** The chat template the file carries (ChatML when absent). */
  chatTemplate?: string;
  /**
   * Fill-in-the-middle tokens (`<|fim_prefix|>`, `<|fim_suffix|>`, `<|fim_middle|>`, named by the
   * tokenizer.ggml.fim_*_token_id keys) in place of the vocabulary's last three pieces; every other
   * token keeps its id.
   */
  fim?: boolean;
}

/** The fill-in-the-middle tokens a `fim` model carries, in the last three ids of its vocabulary. */
export const FIM_PIECES = ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"] as const;

export async function makeModel(opts: MakeModelOptions): Promise<{ path: string; bytes: number }> {
  const hp = MODEL_PRESETS[opts.preset];
  const weightType = opts.weightType ?? "f16";
  const seed = opts.seed ?? 0;
  const path = resolve(opts.out);
  await mkdir(dirname(path), { recursive: true });

  // Write beside the target and rename, so readers never observe a half-written model.
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const bytes = await writeGguf(tmp, {
      metadata: buildMetadata(hp, weightType, opts.chatTemplate ?? CHATML_TEMPLATE, opts.fim === true),
      tensors: buildTensors(hp, weightType, seed, opts.fim === true),
    });
    await rename(tmp, path);
    return { path, bytes };
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Metadata

/** llama.cpp's llama_ftype ids for general.file_type. */
const FILE_TYPE: Record<WeightType, number> = { f16: 1, q8_0: 7 };

function buildMetadata(
  hp: ModelHyperparams,
  weightType: WeightType,
  chatTemplate: string,
  fim: boolean,
): Record<string, GgufValue> {
  const vocab = buildVocab(hp.vocabSize, { fim });
  const headDim = hp.embeddingLength / hp.headCount;
  const meta: Record<string, GgufValue> = {
    "general.architecture": gguf.str("llama"),
    "general.name": gguf.str(hp.name),
    "general.description": gguf.str("Random weights for testing; generated by switchboard makeModel"),
    "general.file_type": gguf.u32(FILE_TYPE[weightType]),
    "llama.vocab_size": gguf.u32(hp.vocabSize),
    "llama.context_length": gguf.u32(hp.contextLength),
    "llama.embedding_length": gguf.u32(hp.embeddingLength),
    "llama.block_count": gguf.u32(hp.blockCount),
    "llama.feed_forward_length": gguf.u32(hp.feedForwardLength),
    "llama.attention.head_count": gguf.u32(hp.headCount),
    "llama.attention.head_count_kv": gguf.u32(hp.headCountKv),
    "llama.rope.freq_base": gguf.f32(10000),
    "llama.rope.dimension_count": gguf.u32(headDim),
    "llama.attention.layer_norm_rms_epsilon": gguf.f32(1e-5),
    "tokenizer.ggml.model": gguf.str("llama"),
    "tokenizer.ggml.tokens": gguf.strArray(vocab.tokens),
    "tokenizer.ggml.scores": gguf.f32Array(vocab.scores),
    "tokenizer.ggml.token_type": gguf.i32Array(vocab.types),
    "tokenizer.ggml.bos_token_id": gguf.u32(SPECIAL_TOKENS.bos),
    // ChatML turns end with <|im_end|>; making it EOS lets plain generation stop at the end of a turn.
    "tokenizer.ggml.eos_token_id": gguf.u32(SPECIAL_TOKENS.imEnd),
    "tokenizer.ggml.unknown_token_id": gguf.u32(SPECIAL_TOKENS.unk),
    "tokenizer.ggml.padding_token_id": gguf.u32(SPECIAL_TOKENS.eos),
    "tokenizer.ggml.add_bos_token": gguf.bool(false),
    "tokenizer.ggml.add_eos_token": gguf.bool(false),
    // Without this SPM would prepend "▁" to every text fragment, so detokenize(tokenize(s)) !== s.
    "tokenizer.ggml.add_space_prefix": gguf.bool(false),
  };
  if (fim) {
    const first = hp.vocabSize - FIM_PIECES.length;
    meta["tokenizer.ggml.fim_pre_token_id"] = gguf.u32(first);
    meta["tokenizer.ggml.fim_suf_token_id"] = gguf.u32(first + 1);
    meta["tokenizer.ggml.fim_mid_token_id"] = gguf.u32(first + 2);
  }
  if (hp.pooling) meta["llama.pooling_type"] = gguf.u32(POOLING_TYPE_IDS[hp.pooling]);
  else meta["tokenizer.chat_template"] = gguf.str(chatTemplate);
  if (weightType === "q8_0") meta["general.quantization_version"] = gguf.u32(2);
  return meta;
}

// ---------------------------------------------------------------------------------------------------------
// Vocabulary

/** llama.cpp's llama_token_type values. */
export const TokenType = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

export interface Vocab {
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
}

const SPM_SPACE = "\u2581";
const SPECIAL_PIECES: ReadonlyArray<readonly [string, number]> = [
  ["<unk>", TokenType.unknown],
  ["<s>", TokenType.control],
  ["</s>", TokenType.control],
  ["<|im_start|>", TokenType.control],
  ["<|im_end|>", TokenType.control],
];

// Most frequent first, so a small vocab keeps the most useful pieces.
const LETTERS_BY_FREQUENCY = "etaoinshrdlcumwfgypbvkjxqz";
const COMMON_WORDS = (
  "the of and to a in is it you that he was for on are with as I his they be at one have this from or had by " +
  "not word but what some we can out other were all there when up use your how said an each she which do their " +
  "time if will way about many then them write would like so these her long make thing see him two has look " +
  "more day could go come did number sound no most people my over know water than call first who may down side " +
  "been now find any new work part take get place made live where after back little only round man year came " +
  "show every good me give our under name very through just form sentence great think say help low line differ " +
  "turn cause much mean before move right boy old too same tell does set three want air well also play small " +
  "end put home read hand port large spell add even land here must big high such follow act why ask men change " +
  "went light kind off need house picture try us again animal point mother world near build self earth father " +
  "hello hi yes thanks thank please sorry user assistant system model answer question today tomorrow data " +
  "code function value test example server request response token text message chat"
).split(" ");
const COMMON_SUBWORDS = (
  "ing ed er es ly tion ment ness able ous ive al en est ful less re un in dis pre th he an nd at on ha ou it " +
  "'s 're 've 'll 'm n't ."
).split(" ");

/**
 * Builds a byte-fallback SPM vocab of exactly `size` tokens: specials, the 256 byte tokens, then normal
 * pieces. Every piece's prefixes precede it, so any prefix of the piece list is closed under prefixes and
 * SPM's pairwise merging can always build a long piece one character at a time.
 */
export function buildVocab(size: number, options: { fim?: boolean } = {}): Vocab {
  const trailing = options.fim ? FIM_PIECES.length : 0;
  const fixed = SPECIAL_PIECES.length + 256 + trailing;
  if (size <= fixed) throw new Error(`vocab size must exceed ${fixed}`);
  // The pieces of a vocabulary without them, the last ones left out (which keeps the list closed
  // under prefixes, and every other token's id and score as they were).
  const pieces = collectPieces(size - fixed + trailing);
  const kept = pieces.length - trailing;

  const tokens: string[] = [];
  const types: number[] = [];
  const scores: number[] = [];
  for (const [piece, type] of SPECIAL_PIECES) push(piece, type, 0);
  for (let b = 0; b < 256; b++) push(byteToken(b), TokenType.byte, 0);
  // Longer pieces score higher so merges prefer them; within a length, earlier (more common) wins.
  for (const [rank, p] of pieces.entries()) {
    if (rank >= kept) break;
    push(p, TokenType.normal, [...p].length - rank / pieces.length);
  }
  if (options.fim) for (const piece of FIM_PIECES) push(piece, TokenType.control, 0);
  return { tokens, scores: Float32Array.from(scores), types: Int32Array.from(types) };

  function push(piece: string, type: number, score: number): void {
    tokens.push(piece);
    types.push(type);
    scores.push(score);
  }
}

function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}

function collectPieces(count: number): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  const add = (piece: string): boolean => {
    const chars = [...piece];
    for (let i = 1; i <= chars.length; i++) {
      if (out.length >= count) return false;
      const prefix = chars.slice(0, i).join("");
      if (!seen.has(prefix)) {
        seen.add(prefix);
        out.push(prefix);
      }
    }
    return out.length < count;
  };
  for (const piece of candidatePieces()) {
    if (!add(piece)) break;
  }
  if (out.length < count) throw new Error(`could only generate ${out.length} of ${count} vocab pieces`);
  return out;
}

/** Candidate pieces, roughly most useful first; the generator is lazy so tiny vocabs stay cheap. */
function* candidatePieces(): Generator<string> {
  yield SPM_SPACE;
  for (let c = 0x21; c <= 0x7e; c++) yield String.fromCharCode(c);
  for (const w of COMMON_WORDS) {
    yield SPM_SPACE + w;
    yield SPM_SPACE + capitalize(w);
  }
  for (const s of COMMON_SUBWORDS) yield s;
  for (const w of COMMON_WORDS) {
    yield w;
    yield capitalize(w);
  }
  // Then every letter n-gram, shorter first, with and without a leading space.
  for (let n = 2; n <= 4; n++) {
    for (const gram of letterNgrams(n)) {
      yield gram;
      yield SPM_SPACE + gram;
    }
  }
}

function* letterNgrams(n: number): Generator<string> {
  if (n === 0) {
    yield "";
    return;
  }
  for (const head of letterNgrams(n - 1)) {
    for (const c of LETTERS_BY_FREQUENCY) yield head + c;
  }
}

function capitalize(w: string): string {
  return w.charAt(0).toUpperCase() + w.slice(1);
}

// ---------------------------------------------------------------------------------------------------------
// Tensors

/** Aim for ~1M values per generated chunk: large enough to amortize writes, small enough to stay cheap. */
const CHUNK_VALUES = 1 << 20;
const WEIGHT_STD = 0.02;

/**
 * Random weights would sample every token uniformly often, including <|im_end|> (ending generation after a
 * handful of tokens) and stray bytes that form invalid UTF-8. To keep generations long and printable, residual
 * dimension 0 is a constant "bias channel": every embedding sets it to BIAS_VALUE, no layer reads it (its norm
 * weight is 0) or writes it (the output projections' row 0 is 0), and output.weight maps it to -SUPPRESS_WEIGHT
 * for unwanted tokens and 0 for the rest. Unwanted tokens thus get a logit far below everything else.
 */
const BIAS_VALUE = 1;
const SUPPRESS_WEIGHT = 64;

/** Tokens the model should (practically) never generate: specials, and bytes other than "\n" and printable ASCII. */
function isSuppressedToken(id: number, vocabSize: number, fim: boolean): boolean {
  const specials = SPECIAL_PIECES.length;
  if (id < specials) return true;
  if (fim && id >= vocabSize - FIM_PIECES.length) return true;
  const byte = id - specials;
  if (byte >= 256) return false;
  return !(byte === 0x0a || (byte >= 0x20 && byte < 0x7f));
}

/** Initializes the element at (row, col); col indexes ne[0], row the flattened outer dimensions. */
type Init = (rand: () => number, row: number, col: number) => number;

function buildTensors(
  hp: ModelHyperparams,
  weightType: WeightType,
  seed: number,
  fim: boolean,
): GgufTensorSpec[] {
  const matrixType = weightType === "q8_0" ? GgmlType.Q8_0 : GgmlType.F16;
  const n = hp.embeddingLength;
  const headDim = n / hp.headCount;
  const kvDim = headDim * hp.headCountKv;
  const ff = hp.feedForwardLength;
  const noise = uniformWithStd(WEIGHT_STD);

  const matrix = (name: string, shape: number[], init: Init = noise): GgufTensorSpec =>
    randomTensor(name, shape, matrixType, seed, init);
  // ggml's RMS-norm kernels want F32 weights; values near 1 keep activations at unit scale.
  const norm = (name: string, channel0: number | null): GgufTensorSpec =>
    randomTensor(name, [n], GgmlType.F32, seed, (rand, _row, col) =>
      col === 0 && channel0 !== null ? channel0 : 1 + (rand() - 0.5) * 0.1,
    );
  const neverWritesChannel0: Init = (rand, row, col) => (row === 0 ? 0 : noise(rand, row, col));

  // Shapes are ggml order: [in_features, out_features] for matrices (ne[0] is the contiguous dim).
  const tensors = [
    matrix("token_embd.weight", [n, hp.vocabSize], (rand, row, col) =>
      col === 0 ? BIAS_VALUE : noise(rand, row, col),
    ),
  ];
  for (let i = 0; i < hp.blockCount; i++) {
    const blk = `blk.${i}`;
    tensors.push(
      norm(`${blk}.attn_norm.weight`, 0),
      matrix(`${blk}.attn_q.weight`, [n, n]),
      matrix(`${blk}.attn_k.weight`, [n, kvDim]),
      matrix(`${blk}.attn_v.weight`, [n, kvDim]),
      matrix(`${blk}.attn_output.weight`, [n, n], neverWritesChannel0),
      norm(`${blk}.ffn_norm.weight`, 0),
      matrix(`${blk}.ffn_gate.weight`, [n, ff]),
      matrix(`${blk}.ffn_up.weight`, [n, ff]),
      matrix(`${blk}.ffn_down.weight`, [ff, n], neverWritesChannel0),
    );
  }
  tensors.push(
    // An embedding model's vector is the final normed state: the constant bias channel would make
    // every input look alike there, so it is zeroed.
    norm("output_norm.weight", hp.pooling ? 0 : 1),
    matrix("output.weight", [n, hp.vocabSize], (rand, row, col) => {
      if (col !== 0) return noise(rand, row, col);
      return isSuppressedToken(row, hp.vocabSize, fim) ? -SUPPRESS_WEIGHT : 0;
    }),
  );
  return tensors;
}

/** Uniform on [-a, a] has std a/sqrt(3); cheaper than Gaussian and just as good for noise weights. */
function uniformWithStd(std: number): Init {
  const a = std * Math.sqrt(3);
  return (rand) => (rand() * 2 - 1) * a;
}

/**
 * Each tensor gets its own PRNG stream derived from (seed, name), so its contents do not depend on the
 * order or number of the other tensors.
 */
function randomTensor(
  name: string,
  shape: number[],
  type: GgmlType,
  seed: number,
  init: Init,
): GgufTensorSpec {
  return {
    name,
    shape,
    type,
    *values() {
      const rand = mulberry32(hashString(name) ^ Math.imul(seed, 0x9e3779b1));
      const rowLen = shape[0] ?? 1;
      const rows = shape.slice(1).reduce((a, b) => a * b, 1);
      // Whole rows per chunk keep Q8_0 blocks intact.
      const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / rowLen));
      for (let first = 0; first < rows; first += rowsPerChunk) {
        const count = Math.min(rowsPerChunk, rows - first);
        const chunk = new Float32Array(count * rowLen);
        let i = 0;
        for (let row = first; row < first + count; row++) {
          for (let col = 0; col < rowLen; col++) chunk[i++] = init(rand, row, col);
        }
        yield chunk;
      }
    },
  };
}

function mulberry32(state: number): () => number {
  let a = state | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, 32-bit. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
