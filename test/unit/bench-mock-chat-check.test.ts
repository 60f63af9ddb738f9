import { describe, expect, it } from "vitest";
import { chatRequestProblem } from "../../bench/mock-chat-check.js";

const SENT = {
  model: "mock",
  stream: true,
  stream_options: { include_usage: true },
  temperature: 1,
  top_p: 1,
  n: 1,
  max_tokens: 8,
  messages: [{ role: "user", content: "hi" }],
};

describe("the upstream bench's mock checks each chat request", () => {
  it("takes what the gateway and the bench's own client send", () => {
    expect(chatRequestProblem(SENT)).toBeUndefined();
    expect(
      chatRequestProblem({
        model: "bench",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 8,
        stream: false,
      }),
    ).toBeUndefined();
    expect(
      chatRequestProblem({ ...SENT, messages: [{ role: "user", content: [{ type: "text", text: "hi" }] }] }),
    ).toBeUndefined();
  });

  it("names what OpenAI would refuse", () => {
    expect(chatRequestProblem([])).toBe("the body is not an object");
    expect(chatRequestProblem({ ...SENT, top_k: 4 })).toBe("unknown field top_k");
    expect(chatRequestProblem({ ...SENT, model: "" })).toMatch(/^model/);
    expect(chatRequestProblem({ ...SENT, messages: [] })).toMatch(/^messages/);
    expect(chatRequestProblem({ ...SENT, messages: [{ role: "robot", content: "hi" }] })).toBe(
      "messages[0].role",
    );
    expect(chatRequestProblem({ ...SENT, messages: [{ role: "user", content: 3 }] })).toBe(
      "messages[0].content",
    );
    expect(chatRequestProblem({ ...SENT, stream: false })).toMatch(/^stream_options/);
    expect(chatRequestProblem({ ...SENT, max_tokens: 0 })).toBe("max_tokens out of range");
    expect(chatRequestProblem({ ...SENT, temperature: 3 })).toBe("temperature out of range");
  });
});
