import { describe, expect, it } from "vitest";
import { CompletionStream } from "../../src/backends/local/engines/llama-server/completion-stream.js";

/** A streamed /completion message as llama-server sends it (the fields the engine reads). */
function partial(
  token: number,
  content: string,
  tokensPredicted: number,
  extra: Record<string, unknown> = {},
) {
  return { index: 0, content, tokens: [token], stop: false, tokens_predicted: tokensPredicted, ...extra };
}

function final(stopType: "eos" | "limit", tokensPredicted: number) {
  return {
    index: 0,
    content: "",
    tokens: [],
    stop: true,
    stop_type: stopType,
    tokens_predicted: tokensPredicted,
  };
}

function run(messages: Record<string, unknown>[], topLogprobs?: number) {
  const stream = new CompletionStream(topLogprobs);
  return { events: messages.flatMap((m) => stream.push(m)), generated: stream.generated };
}

describe("llama-server's streamed completion as engine events", () => {
  it("gives one token event per message and ends with length at the limit", () => {
    const { events } = run([
      partial(10, "a", 1),
      partial(11, " b", 2),
      partial(12, "c", 3),
      final("limit", 3),
    ]);
    expect(events).toEqual([
      { type: "token", token: 10, text: "a" },
      { type: "token", token: 11, text: " b" },
      { type: "token", token: 12, text: "c" },
      { type: "end", reason: "length" },
    ]);
  });

  it("counts tokens llama-server held back inside a multi-byte character, their text coming with the last", () => {
    // <0xE4> <0xB8> stream nothing; <0xAD> completes "中" and arrives with tokens_predicted 4.
    const { events } = run([partial(300, "x", 1), partial(178, "中", 4), final("limit", 4)]);
    expect(events).toEqual([
      { type: "token", token: 300, text: "x" },
      { type: "token", token: 178, text: "" },
      { type: "token", token: 178, text: "" },
      { type: "token", token: 178, text: "中" },
      { type: "end", reason: "length" },
    ]);
  });

  it("drops the end-of-generation token and ends with stop", () => {
    const { events, generated } = run([partial(300, "x", 1), partial(4, "", 2), final("eos", 2)]);
    expect(events).toEqual([
      { type: "token", token: 300, text: "x" },
      { type: "end", reason: "stop" },
    ]);
    expect(events.filter((e) => e.type === "token")).toHaveLength(1);
    expect(generated).toEqual([300, 4]);
  });

  it("ends with stop and no tokens when the first token ends the generation", () => {
    expect(run([partial(4, "", 1), final("eos", 1)]).events).toEqual([{ type: "end", reason: "stop" }]);
  });

  it("keeps a token without text that did not end the generation", () => {
    const { events } = run([partial(3, "", 1), partial(300, "x", 2), partial(5, "", 3), final("limit", 3)]);
    expect(events).toEqual([
      { type: "token", token: 3, text: "" },
      { type: "token", token: 300, text: "x" },
      { type: "token", token: 5, text: "" },
      { type: "end", reason: "length" },
    ]);
  });

  it("counts tokens cut off inside an unfinished character when the limit hits", () => {
    const { events } = run([partial(300, "x", 1), final("limit", 3)]);
    expect(events.filter((e) => e.type === "token")).toHaveLength(3);
    expect(events.map((e) => (e.type === "token" ? e.text : e.reason))).toEqual(["x", "", "", "length"]);
  });

  it("reads the sampled token's log probability and the top alternatives, pieces from their bytes", () => {
    const probs = {
      completion_probabilities: [
        {
          id: 178,
          token: "中",
          bytes: [0xe4, 0xb8, 0xad],
          logprob: -1.5,
          top_logprobs: [
            { id: 7, token: "", bytes: [0xe4], logprob: -0.5 },
            { id: 178, token: "", bytes: [0xad], logprob: -1.5 },
            { id: 9, token: "z", bytes: [0x7a], logprob: -2 },
          ],
        },
      ],
    };
    const { events } = run([partial(178, "中", 1, probs), final("limit", 1)], 2);
    expect(events[0]).toEqual({
      type: "token",
      token: 178,
      text: "中",
      piece: "中",
      logprob: -1.5,
      top: [
        { token: 7, text: "\uFFFD", logprob: -0.5 },
        { token: 178, text: "\uFFFD", logprob: -1.5 },
      ],
    });
  });

  it("asks nothing of messages without a token (progress, keep-alive)", () => {
    const { events } = run([
      { index: 0, content: "", tokens: [], stop: false },
      partial(1, "a", 1),
      final("limit", 1),
    ]);
    expect(events).toHaveLength(2);
  });
});
