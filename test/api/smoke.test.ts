import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

describe("a listening server on the tiny model", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers a chat completion through the official SDK", async () => {
    const completion = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "Hello" }],
      max_tokens: 8,
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.finish_reason).toBe("length");
    expect(completion.usage?.completion_tokens).toBe(8);
  });
});
