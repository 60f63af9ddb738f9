import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** POST /v1/embeddings through the official SDK and raw HTTP, on the tiny random embedding model. */
const EMBED = "embed";
/** The same file, configured without Matryoshka truncation. */
const EMBED_FIXED = "embed-fixed";
/** embed-tiny's vector size. */
const SIZE = 64;

const norm = (vector: readonly number[]) => Math.sqrt(vector.reduce((sum, x) => sum + x * x, 0));

describe("embeddings", () => {
  let t: TestServer;
  beforeAll(async () => {
    const source = inject("embedModelPath");
    t = await startTestServer({
      extraModels: [
        { id: EMBED, source, kind: "embedding", matryoshka: true, parallel: 4, load: "start" },
        { id: EMBED_FIXED, source, kind: "embedding" },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const post = async (body: Record<string, unknown>, path = "/v1/embeddings") => {
    const res = await fetch(`${t.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: EMBED, ...body }),
    });
    return {
      status: res.status,
      body: (await res.json()) as { error?: { message: string; param: string | null; code: string } },
    };
  };

  const floats = async (
    input: string | string[] | number[] | number[][],
    extra: { dimensions?: number } = {},
  ) => t.client.embeddings.create({ model: EMBED, input, encoding_format: "float", ...extra });

  it("embeds a string with the shape the spec gives, unit length, input tokens as usage", async () => {
    const response = await floats("The quick brown fox");
    expectMatchesSchema(response, "CreateEmbeddingResponse");
    expect(response.object).toBe("list");
    expect(response.model).toBe(EMBED);
    expect(response.data).toHaveLength(1);
    const [item] = response.data;
    expect(item?.object).toBe("embedding");
    expect(item?.index).toBe(0);
    expect(item?.embedding).toHaveLength(SIZE);
    expect(norm(item?.embedding ?? [])).toBeCloseTo(1, 5);
    expect(response.usage.prompt_tokens).toBeGreaterThan(0);
    expect(response.usage.total_tokens).toBe(response.usage.prompt_tokens);
  });

  it("gives the same numbers as base64 (the SDK's default, which it decodes) and as floats", async () => {
    const input = ["hello world", "a second input"];
    const viaBase64 = await t.client.embeddings.create({ model: EMBED, input });
    const viaFloat = await floats(input);
    expect(viaBase64.data.map((d) => d.embedding)).toEqual(viaFloat.data.map((d) => d.embedding));
    const raw = await post({ input: "hello world", encoding_format: "base64" });
    const encoded = (raw.body as unknown as { data: { embedding: string }[] }).data[0]?.embedding ?? "";
    const bytes = Buffer.from(encoded, "base64");
    expect(bytes.length).toBe(SIZE * 4);
    expect(bytes.readFloatLE(0)).toBe(viaFloat.data[0]?.embedding[0]);
  });

  it("takes every input form and answers in input order, each as if embedded alone", async () => {
    const texts = ["one", "two words", "three little words", "four", "five is the last"];
    const batch = await floats(texts);
    expect(batch.data.map((d) => d.index)).toEqual([0, 1, 2, 3, 4]);
    for (const [i, text] of texts.entries()) {
      const alone = await floats(text);
      const expected = alone.data[0]?.embedding ?? [];
      const got = batch.data[i]?.embedding ?? [];
      for (let d = 0; d < SIZE; d++) expect(got[d]).toBeCloseTo(expected[d] as number, 4);
    }
    const tokens = [300, 301, 302, 303];
    const one = await floats(tokens);
    expect(one.data).toHaveLength(1);
    expect(one.usage.prompt_tokens).toBe(4);
    const many = await floats([tokens, [310, 311], [320]]);
    expect(many.data.map((d) => d.index)).toEqual([0, 1, 2]);
    expect(many.usage.prompt_tokens).toBe(7);
    expect(many.data[0]?.embedding).toEqual(one.data[0]?.embedding);
    expectMatchesSchema(many, "CreateEmbeddingResponse");
  });

  it("shortens vectors to the dimensions asked for and renormalises them", async () => {
    const full = (await floats("matryoshka")).data[0]?.embedding ?? [];
    const short = (await floats("matryoshka", { dimensions: 16 })).data[0]?.embedding ?? [];
    expect(short).toHaveLength(16);
    expect(norm(short)).toBeCloseTo(1, 5);
    const scale = norm(full.slice(0, 16));
    for (let d = 0; d < 16; d++) expect(short[d]).toBeCloseTo((full[d] as number) / scale, 5);
    expect((await floats("same size", { dimensions: SIZE })).data[0]?.embedding).toHaveLength(SIZE);
  });

  it("refuses bad inputs with a 400 that names the field or the item", async () => {
    const tooLong = Array.from({ length: 600 }, () => 300);
    const cases: [Record<string, unknown>, string, string][] = [
      [{ input: "" }, "input", "invalid_value"],
      [{ input: [] }, "input", "invalid_value"],
      [{ input: ["a", "b", ""] }, "input[2]", "invalid_value"],
      [{ input: ["a", 3] }, "input[1]", "invalid_value"],
      [{ input: [[1, 2], []] }, "input[1]", "invalid_value"],
      [
        {
          input: [
            [1, 2],
            [3, -1],
          ],
        },
        "input[1][1]",
        "invalid_value",
      ],
      [{ input: [5, 1.5] }, "input[1]", "invalid_value"],
      [{ input: [{ text: "x" }] }, "input[0]", "invalid_value"],
      [{ input: Array.from({ length: 2049 }, () => "x") }, "input", "invalid_value"],
      [{ input: [[1], [2], [3], tooLong] }, "input[3]", "context_length_exceeded"],
      [{ input: ["a", "b", "c", "word ".repeat(2000)] }, "input[3]", "context_length_exceeded"],
      [{ input: [[1], [999_999]] }, "input[1]", "invalid_value"],
      [{ input: "x", encoding_format: "hex" }, "encoding_format", "invalid_value"],
      [{ input: "x", dimensions: 0 }, "dimensions", "invalid_value"],
      [{ input: "x", dimensions: SIZE + 1 }, "dimensions", "invalid_value"],
      [{ input: "x", model: EMBED_FIXED, dimensions: 16 }, "dimensions", "unsupported_parameter"],
      [{ input: "x", temperature: 1 }, "temperature", "unknown_parameter"],
      [{}, "input", "missing_required_parameter"],
    ];
    for (const [body, param, code] of cases) {
      const res = await post(body);
      expect({ body: Object.keys(body), status: res.status, param: res.body.error?.param }).toEqual({
        body: Object.keys(body),
        status: 400,
        param,
      });
      expect(res.body.error?.code).toBe(code);
      expectMatchesSchema(res.body, "ErrorResponse");
    }
  });

  it("accepts user, and the SDK's errors carry status, code and param", async () => {
    const ok = await t.client.embeddings.create({ model: EMBED, input: "x", user: "user-1234" });
    expect(ok.data).toHaveLength(1);
    await expect(t.client.embeddings.create({ model: EMBED, input: ["ok", ""] })).rejects.toMatchObject({
      status: 400,
      code: "invalid_value",
      param: "input[1]",
    });
  });

  it("refuses embeddings from a chat model, naming the models that embed", async () => {
    const res = await post({ model: TINY_MODEL, input: "x" });
    expect(res.status).toBe(400);
    expect(res.body.error?.param).toBe("model");
    expect(res.body.error?.message).toContain(`'${EMBED}'`);
    const missing = await post({ model: "no-such-model", input: "x" });
    expect(missing.status).toBe(404);
  });

  it("refuses chat and text completions from an embedding model", async () => {
    await expect(
      t.client.chat.completions.create({ model: EMBED, messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 400, param: "model" });
    await expect(t.client.completions.create({ model: EMBED, prompt: "hi" })).rejects.toMatchObject({
      status: 400,
      param: "model",
    });
  });

  it("lists embedding models beside chat models", async () => {
    const ids = (await t.client.models.list()).data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining([TINY_MODEL, EMBED, EMBED_FIXED]));
  });
});
