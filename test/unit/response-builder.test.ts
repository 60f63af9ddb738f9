import { describe, expect, it } from "vitest";
import { ResponseBuilder } from "../../src/api/responses/encode.js";

const meta = { id: "resp_1", createdAt: 1, model: "m", request: { model: "m" }, store: false };

describe("ResponseBuilder", () => {
  it("keeps a refusal in a content part of its own, announced and closed by its events", () => {
    const builder = new ResponseBuilder(meta, false);
    const events = [
      ...builder.add({ type: "text", choice: 0, text: "I can't" }),
      ...builder.add({ type: "refusal", choice: 0, text: "Not allowed." }),
      ...builder.add({ type: "finish", choice: 0, reason: "stop" }),
    ];
    expect(builder.output[0]?.content).toEqual([
      { type: "output_text", text: "I can't", annotations: [], logprobs: [] },
      { type: "refusal", refusal: "Not allowed." },
    ]);
    const types = events.map((e) => e.type);
    expect(types).toContain("response.refusal.delta");
    expect(types.indexOf("response.refusal.done")).toBeLessThan(types.indexOf("response.output_item.done"));
  });

  it("closes one item before the next kind begins: reasoning, then text, then a call", () => {
    const builder = new ResponseBuilder(meta, false);
    builder.add({ type: "reasoning", choice: 0, text: "hmm" });
    builder.add({ type: "text", choice: 0, text: "ok" });
    builder.add({ type: "tool-call", choice: 0, index: 0, id: "call_1", name: "f", argumentsDelta: "{}" });
    builder.add({ type: "finish", choice: 0, reason: "tool_calls" });
    expect(builder.output.map((item) => [item.type, item.status])).toEqual([
      ["reasoning", "completed"],
      ["message", "completed"],
      ["function_call", "completed"],
    ]);
    expect(builder.output[2]).toMatchObject({ call_id: "call_1", name: "f", arguments: "{}" });
    expect(builder.status).toBe("completed");
  });
});
