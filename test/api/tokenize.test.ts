import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** The tokenizer extensions: /tokenize, /detokenize and /v1/chat/completions/input_tokens. */
describe("tokenizer extensions", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  const post = async (path: string, body: Record<string, unknown>) => {
    const res = await fetch(`${t.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: bodies are probed field by field in the assertions
    return { status: res.status, body: (await res.json()) as any };
  };

  it("tokenizes and detokenizes back to the same text", async () => {
    const content = "Hello there, ünïcödé!";
    const tokens = await post("/tokenize", { model: TINY_MODEL, content });
    expect(tokens.status).toBe(200);
    expect(tokens.body.tokens.length).toBeGreaterThan(0);
    expect(tokens.body.tokens.every((id: unknown) => Number.isInteger(id))).toBe(true);
    const back = await post("/detokenize", { model: TINY_MODEL, tokens: tokens.body.tokens });
    expect(back.body).toEqual({ content });
  });

  it("parses special-token text only when asked", async () => {
    const plain = await post("/tokenize", { model: TINY_MODEL, content: "<|im_start|>" });
    const special = await post("/tokenize", {
      model: TINY_MODEL,
      content: "<|im_start|>",
      parse_special: true,
    });
    expect(special.body.tokens).toHaveLength(1);
    expect(plain.body.tokens.length).toBeGreaterThan(1);
  });

  it("gives each token's text when asked", async () => {
    const res = await post("/tokenize", { model: TINY_MODEL, content: "abc def", with_pieces: true });
    const pieces = res.body.tokens as { id: number; piece: string }[];
    expect(pieces.map((p) => p.piece).join("")).toBe("abc def");
    expect(pieces.every((p) => Number.isInteger(p.id))).toBe(true);
  });

  it("counts a chat request's prompt tokens exactly as the completion will", async () => {
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "How many tokens is this?" },
    ];
    const counted = await post("/v1/chat/completions/input_tokens", { model: TINY_MODEL, messages });
    expect(counted.body.object).toBe("chat.completion.input_tokens");
    const completion = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: messages as never,
      max_tokens: 1,
    });
    expect(counted.body.input_tokens).toBe(completion.usage?.prompt_tokens);
  });

  it("refuses bad input with 400 naming the field, and unknown models with 404", async () => {
    expect((await post("/tokenize", { model: TINY_MODEL })).body.error.param).toBe("content");
    expect((await post("/detokenize", { model: TINY_MODEL, tokens: [999_999] })).body.error.param).toBe(
      "tokens",
    );
    expect((await post("/detokenize", { model: TINY_MODEL, tokens: [-1] })).body.error.param).toBe(
      "tokens[0]",
    );
    const huge = await post("/tokenize", { model: TINY_MODEL, content: "word ".repeat(100_000) });
    expect(huge.status).toBe(400);
    expect(huge.body.error).toMatchObject({ code: "context_length_exceeded", param: "content" });
    const unknown = await post("/tokenize", { model: "no-such-model", content: "x" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("model_not_found");
    const count = await post("/v1/chat/completions/input_tokens", { model: TINY_MODEL, messages: [] });
    expect(count.body.error.param).toBe("messages");
  });
});
