import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, type LlamaContext, type LlamaModel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readGgufFacts } from "../../src/backends/local/engines/gguf-facts.js";
import { encodeValues, f16ToF32, f32ToF16, GgmlType } from "../../src/models/gguf-writer.js";
import {
  buildVocab,
  CHATML_TEMPLATE,
  FIM_PIECES,
  MODEL_PRESETS,
  makeModel,
  POOLING_TYPE_IDS,
  SPECIAL_TOKENS,
} from "../../src/models/make-model.js";

describe("gguf-writer encoding", () => {
  it("converts float32 to float16 with round-to-nearest-even", () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds up to Inf
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie rounds to even (zero)
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie rounds to even mantissa
    expect(f16ToF32(f32ToF16(0.1))).toBeCloseTo(0.1, 4);
  });

  it("quantizes Q8_0 blocks as an f16 scale plus 32 int8 values", () => {
    const values = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 16);
    const bytes = encodeValues(values, GgmlType.Q8_0);
    expect(bytes.length).toBe(34);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const scale = f16ToF32(view.getUint16(0, true));
    expect(scale).toBeCloseTo(1 / 127, 5);
    expect(view.getInt8(2)).toBe(-127);
    expect(view.getInt8(2 + 16)).toBe(0);
  });
});

describe("buildVocab", () => {
  it("lays out specials, bytes, then unique prefix-closed pieces", () => {
    const vocab = buildVocab(512);
    expect(vocab.tokens.length).toBe(512);
    expect(new Set(vocab.tokens).size).toBe(512);
    expect(vocab.tokens.slice(0, 5)).toEqual(["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]);
    expect(vocab.tokens[5]).toBe("<0x00>");
    expect(vocab.tokens[260]).toBe("<0xFF>");
    expect(vocab.tokens[261]).toBe("\u2581");
    const normal = new Set(vocab.tokens.slice(261));
    for (const piece of normal) {
      const chars = [...piece];
      // SPM merges pairwise, so every multi-character piece needs its prefix in the vocab.
      if (chars.length > 1) expect(normal.has(chars.slice(0, -1).join(""))).toBe(true);
    }
  });
});

describe("makeModel with fill-in-the-middle tokens", () => {
  it("puts them in the last three ids, every other token where the plain vocabulary has it", () => {
    const plain = buildVocab(512);
    const fim = buildVocab(512, { fim: true });
    expect(fim.tokens.slice(0, 509)).toEqual(plain.tokens.slice(0, 509));
    expect(Array.from(fim.scores.slice(0, 509))).toEqual(Array.from(plain.scores.slice(0, 509)));
    expect(fim.tokens.slice(509)).toEqual([...FIM_PIECES]);
  });

  it("names them with the GGUF keys, so llama.cpp knows them as the model's infill tokens", async () => {
    const dir = await mkdtemp(join(tmpdir(), "switchboard-make-fim-"));
    const llama = await getLlama({ build: "never", gpu: false });
    try {
      const made = await makeModel({ preset: "tiny", out: join(dir, "fim.gguf"), seed: 7, fim: true });
      const model = await llama.loadModel({ modelPath: made.path, vocabOnly: true });
      expect([model.tokens.infill.prefix, model.tokens.infill.suffix, model.tokens.infill.middle]).toEqual([
        509, 510, 511,
      ]);
      // Plain text never spells them.
      expect(model.tokenize("<|fim_prefix|>", false)).not.toContain(509);
      // Read from the header alone too (llama-server without a vocabulary loaded here).
      expect((await readGgufFacts(made.path)).fim).toEqual({ prefix: 509, suffix: 510, middle: 511 });
      await model.dispose();
    } finally {
      await llama.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("makeModel (tiny)", () => {
  let dir: string;
  let llama: Llama;
  let model: LlamaModel;
  let context: LlamaContext;
  let modelPath: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "switchboard-make-model-"));
    const made = await makeModel({ preset: "tiny", out: join(dir, "tiny.gguf"), seed: 1234 });
    modelPath = made.path;
    llama = await getLlama({ build: "never", gpu: false });
    model = await llama.loadModel({ modelPath });
    context = await model.createContext({ sequences: 1, threads: 1 });
  });

  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
    await llama?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes a small file whose size matches the reported byte count", async () => {
    const { size } = await stat(modelPath);
    expect(size).toBeLessThan(1024 * 1024);
    const again = await makeModel({ preset: "tiny", out: join(dir, "size-check.gguf"), seed: 1234 });
    expect(again.bytes).toBe(size);
  });

  it("is byte-identical for the same seed and differs for another seed", async () => {
    const a = await makeModel({ preset: "tiny", out: join(dir, "a.gguf"), seed: 7 });
    const b = await makeModel({ preset: "tiny", out: join(dir, "b.gguf"), seed: 7 });
    const c = await makeModel({ preset: "tiny", out: join(dir, "c.gguf"), seed: 8 });
    const [bytesA, bytesB, bytesC] = await Promise.all([a, b, c].map((m) => readFile(m.path)));
    expect(bytesA?.equals(bytesB ?? Buffer.alloc(0))).toBe(true);
    expect(bytesA?.equals(bytesC ?? Buffer.alloc(0))).toBe(false);
  });

  it("exposes the special tokens and ChatML template", () => {
    expect(model.tokens.bos).toBe(SPECIAL_TOKENS.bos);
    expect(model.tokens.eos).toBe(SPECIAL_TOKENS.imEnd);
    expect(model.fileInfo.metadata.tokenizer.chat_template).toBe(CHATML_TEMPLATE);
    expect(model.fileInfo.metadata.general.architecture).toBe("llama");
  });

  it("tokenizes ChatML control tokens as single special ids", () => {
    const tokens = model.tokenize("<|im_start|>user\nhello<|im_end|>", true);
    expect(tokens[0]).toBe(SPECIAL_TOKENS.imStart);
    expect(tokens.at(-1)).toBe(SPECIAL_TOKENS.imEnd);
    expect(tokens.filter((t) => t === SPECIAL_TOKENS.imStart || t === SPECIAL_TOKENS.imEnd)).toHaveLength(2);
    expect(model.detokenize(tokens, true)).toBe("<|im_start|>user\nhello<|im_end|>");
  });

  it("round-trips arbitrary Unicode through byte fallback", () => {
    const text = "Hello, world! ünïcode 😀";
    expect(model.detokenize(model.tokenize(text))).toBe(text);
  });

  it("generates 20 tokens, reproducibly for a fixed seed", async () => {
    const sequence = context.getSequence();
    const prompt = model.tokenize("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n", true);
    const generate = async (): Promise<Token[]> => {
      await sequence.clearHistory();
      const out: Token[] = [];
      for await (const token of sequence.evaluate(prompt, { temperature: 0.8, seed: 1 })) {
        out.push(token);
        if (out.length >= 20) break;
      }
      return out;
    };
    const first = await generate();
    const second = await generate();
    expect(first).toHaveLength(20);
    expect(new Set(first).size).toBeGreaterThan(5);
    expect(second).toEqual(first);
    sequence.dispose();
  });

  it("produces a loadable Q8_0 variant", async () => {
    const q8 = await makeModel({
      preset: "tiny",
      out: join(dir, "tiny-q8_0.gguf"),
      weightType: "q8_0",
      seed: 1,
    });
    const q8Model = await llama.loadModel({ modelPath: q8.path });
    try {
      expect(q8Model.fileInfo.metadata.general.file_type).toBe(7);
      const ctx = await q8Model.createContext({ sequences: 1, threads: 1 });
      const sequence = ctx.getSequence();
      const out: Token[] = [];
      for await (const token of sequence.evaluate(q8Model.tokenize("hello"), { temperature: 0.8, seed: 1 })) {
        out.push(token);
        if (out.length >= 5) break;
      }
      expect(out).toHaveLength(5);
      await ctx.dispose();
    } finally {
      await q8Model.dispose();
    }
  });
});

describe("makeModel (embedding presets)", () => {
  let dir: string;
  let llama: Llama;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "switchboard-make-embed-"));
    llama = await getLlama({ build: "never", gpu: false });
  });

  afterAll(async () => {
    await llama?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes a mean-pooling model without a chat template that node-llama-cpp embeds with", async () => {
    const made = await makeModel({ preset: "embed-tiny", out: join(dir, "embed.gguf"), seed: 3 });
    const model = await llama.loadModel({ modelPath: made.path });
    try {
      const arch = model.fileInfo.architectureMetadata as { pooling_type?: number };
      expect(arch.pooling_type).toBe(POOLING_TYPE_IDS.mean);
      expect(model.fileInfo.metadata.tokenizer.chat_template).toBeUndefined();
      const context = await model.createEmbeddingContext({ contextSize: 512, threads: 1 });
      const a = await context.getEmbeddingFor("hello world");
      const b = await context.getEmbeddingFor("something else entirely");
      const again = await context.getEmbeddingFor("hello world");
      expect(a.vector).toHaveLength(MODEL_PRESETS["embed-tiny"].embeddingLength);
      expect(again.vector).toEqual(a.vector);
      expect(a.vector.every(Number.isFinite)).toBe(true);
      // Random weights, but distinct inputs still give distinct directions.
      expect(a.calculateCosineSimilarity(b)).toBeLessThan(0.95);
      await context.dispose();
    } finally {
      await model.dispose();
    }
  });

  it("has an embed-small preset in bge-small's shape", () => {
    expect(MODEL_PRESETS["embed-small"]).toMatchObject({
      embeddingLength: 384,
      blockCount: 12,
      headCount: 12,
      feedForwardLength: 1536,
      contextLength: 512,
      pooling: "mean",
    });
  });
});
