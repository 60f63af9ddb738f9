import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGgufFileInfo } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { longestTokenBytes, readGgufFacts } from "../../src/backends/local/engines/gguf-facts.js";
import { readGgufMetadata } from "../../src/models/gguf-reader.js";
import { makeModel } from "../../src/models/make-model.js";

describe("reading a GGUF header without llama.cpp", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "switchboard-gguf-reader-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const preset of ["tiny", "embed-tiny"] as const) {
    it(`reads what llama.cpp's own reader reads from a ${preset} model`, async () => {
      const { path } = await makeModel({
        preset,
        out: join(dir, `${preset}.gguf`),
        seed: 3,
        fim: preset === "tiny",
      });
      const facts = await readGgufFacts(path);
      const info = await readGgufFileInfo(path, {
        readTensorInfo: false,
        sourceType: "filesystem",
        logWarnings: false,
      });
      const arch = info.architectureMetadata as {
        context_length?: number;
        embedding_length?: number;
        pooling_type?: number;
      };
      const tokenizer = info.metadata.tokenizer as unknown as {
        chat_template?: string;
        ggml: { tokens: string[] };
      };
      expect(facts.trainContextSize).toBe(arch.context_length);
      expect(facts.embeddingSize).toBe(arch.embedding_length);
      expect(facts.vocabSize).toBe(tokenizer.ggml.tokens.length);
      expect(facts.longestTokenBytes).toBe(longestTokenBytes(tokenizer.ggml.tokens));
      expect(facts.chatTemplate).toBe(tokenizer.chat_template);
      if (preset === "tiny") expect(facts.fim).toEqual({ prefix: 509, suffix: 510, middle: 511 });
      else expect(facts.pooling).toBe("mean");
    });
  }

  it("skips arrays it is told to and keeps the rest", async () => {
    const { path } = await makeModel({ preset: "tiny", out: join(dir, "skip.gguf"), seed: 1 });
    const metadata = await readGgufMetadata(path, { keepArray: (key) => key !== "tokenizer.ggml.tokens" });
    expect(metadata.get("tokenizer.ggml.tokens")).toEqual([]);
    expect((metadata.get("tokenizer.ggml.scores") as number[]).length).toBeGreaterThan(0);
    expect(metadata.get("general.architecture")).toBe("llama");
  });

  it("refuses a file that is not GGUF, and one cut off inside its metadata", async () => {
    const notGguf = join(dir, "not.gguf");
    await writeFile(notGguf, "hello, this is text");
    await expect(readGgufMetadata(notGguf)).rejects.toThrow(/not a GGUF file/);
    const { path } = await makeModel({ preset: "tiny", out: join(dir, "whole.gguf"), seed: 1 });
    const { readFile } = await import("node:fs/promises");
    const cut = join(dir, "cut.gguf");
    await writeFile(cut, (await readFile(path)).subarray(0, 200));
    await expect(readGgufMetadata(cut)).rejects.toThrow(/ends inside its metadata/);
  });

  it("refuses a header that claims absurd sizes instead of allocating them", async () => {
    const header = Buffer.alloc(24 + 8 + 8);
    header.writeUInt32LE(0x46554747, 0);
    header.writeUInt32LE(3, 4);
    header.writeBigUInt64LE(0n, 8);
    header.writeBigUInt64LE(1n, 16);
    header.writeBigUInt64LE(1n << 40n, 24); // the first key's length
    const hostile = join(dir, "hostile.gguf");
    await writeFile(hostile, header);
    await expect(readGgufMetadata(hostile)).rejects.toThrow(/claims/);
  });
});
