import { describe, expect, it } from "vitest";
import { ChatTemplate } from "../../src/backends/local/chat-template.js";
import { planOutput } from "../../src/backends/local/tools/output-plan.js";
import { OutputReader, type ReaderEvent } from "../../src/backends/local/tools/output-reader.js";
import { toolSyntaxFor } from "../../src/backends/local/tools/tool-syntax.js";
import { ServiceError } from "../../src/core/errors.js";
import type { ChatMessage } from "../../src/core/generation.js";
import type { OutputConstraint, ToolDefinition } from "../../src/core/messages.js";
import { CHATML_TEMPLATE } from "../../src/models/make-model.js";
import {
  HERMES_TEMPLATE,
  LLAMA3_TEMPLATE,
  MISTRAL_TEMPLATE,
  REASONING_TEMPLATE,
} from "../helpers/chat-templates.js";
import { gbnfMatcher } from "../helpers/gbnf-matcher.js";

const WEATHER: ToolDefinition = {
  name: "get_weather",
  description: "Weather for a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string" }, unit: { enum: ["c", "f"] } },
    required: ["city", "unit"],
    additionalProperties: false,
  },
  strict: true,
};
const TIME: ToolDefinition = { name: "get_time", strict: false };

/** Feeds the text one character at a time, as the worst-case stream would. */
function readAll(reader: OutputReader, text: string): ReaderEvent[] {
  const events: ReaderEvent[] = [];
  for (const char of text) events.push(...reader.push(char));
  events.push(...reader.end());
  return events;
}

/** Events folded per kind: the text, the reasoning, and each call's id, name and arguments. */
function fold(events: ReaderEvent[]) {
  let content = "";
  let reasoning = "";
  const calls: { id?: string; name?: string; arguments: string }[] = [];
  for (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "reasoning") reasoning += e.text;
    else {
      if (!calls[e.index]) calls[e.index] = { arguments: "" };
      const call = calls[e.index] as { id?: string; name?: string; arguments: string };
      if (e.id) call.id = e.id;
      if (e.name) call.name = e.name;
      call.arguments += e.argumentsDelta;
    }
  }
  return { content, reasoning, calls };
}

let ids = 0;
const newCallId = () => `call_${++ids}`;

describe("the output reader", () => {
  it("splits text before a hermes block from the calls in it, arguments as written", () => {
    const reader = new OutputReader({ reasoning: "off", toolOpener: "<tool_call>", newCallId });
    const text =
      'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo, \\"N\\"", "unit": "c"}}\n</tool_call>\n' +
      '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>';
    const out = fold(readAll(reader, text));
    expect(out.content).toBe("Let me check.");
    expect(out.calls.map((c) => c.name)).toEqual(["get_weather", "get_time"]);
    expect(JSON.parse(out.calls[0]?.arguments ?? "")).toEqual({ city: 'Oslo, "N"', unit: "c" });
    expect(out.calls[1]?.arguments).toBe("{}");
    expect(out.calls.every((c) => c.id?.startsWith("call_"))).toBe(true);
    expect(reader.callCount).toBe(2);
  });

  it("gives each call's id and name in its first event, then only argument text", () => {
    const reader = new OutputReader({ reasoning: "off", toolOpener: "<tool_call>", newCallId });
    const events = readAll(
      reader,
      '<tool_call>\n{"name": "f", "arguments": {"a": [1, {"b": "}"}]}}\n</tool_call>',
    );
    const calls = events.filter((e) => e.type === "call");
    expect(calls[0]).toMatchObject({ index: 0, name: "f", argumentsDelta: "" });
    expect(calls.slice(1).every((e) => e.type === "call" && e.name === undefined && e.id === undefined)).toBe(
      true,
    );
    expect(fold(events).calls[0]?.arguments).toBe('{"a": [1, {"b": "}"}]}');
  });

  it("reads Llama 3 calls (the opener is the object's own start) and Mistral's array", () => {
    const llama = new OutputReader({
      reasoning: "off",
      toolOpener: '{"name": ',
      argumentsKey: "parameters",
      newCallId,
    });
    const a = fold(readAll(llama, '{"name": "get_time", "parameters": {"zone": "UTC"}}'));
    expect(a).toMatchObject({ content: "", calls: [{ name: "get_time", arguments: '{"zone": "UTC"}' }] });
    const mistral = new OutputReader({ reasoning: "off", toolOpener: "[TOOL_CALLS]", newCallId });
    const b = fold(
      readAll(
        mistral,
        '[TOOL_CALLS][{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": {"y": [2]}}]',
      ),
    );
    expect(b.calls.map((c) => [c.name, c.arguments])).toEqual([
      ["f", '{"x": 1}'],
      ["g", '{"y": [2]}'],
    ]);
  });

  it("releases text that only looked like the start of a marker", () => {
    const reader = new OutputReader({ reasoning: "off", toolOpener: "<tool_call>", newCallId });
    expect(fold(readAll(reader, "a < b and <tool"))).toMatchObject({ content: "a < b and <tool", calls: [] });
  });

  it("splits reasoning from the answer, opened by the prompt or by the model", () => {
    const open = new OutputReader({ reasoning: "open" });
    expect(fold(readAll(open, "think hard</think>\n\nThe answer."))).toMatchObject({
      reasoning: "think hard",
      content: "The answer.",
    });
    const optional = new OutputReader({ reasoning: "optional" });
    expect(fold(readAll(optional, "\n<think>hmm</think>Yes"))).toMatchObject({
      reasoning: "hmm",
      content: "Yes",
    });
    const plain = new OutputReader({ reasoning: "optional" });
    expect(fold(readAll(plain, "No thinking here"))).toMatchObject({
      reasoning: "",
      content: "No thinking here",
    });
  });

  it("reads calls made after reasoning, never from inside it", () => {
    const reader = new OutputReader({ reasoning: "open", toolOpener: "<tool_call>", newCallId });
    const out = fold(
      readAll(
        reader,
        'maybe <tool_call> here?</think>\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>',
      ),
    );
    expect(out.reasoning).toBe("maybe <tool_call> here?");
    expect(out.calls.map((c) => c.name)).toEqual(["f"]);
  });
});

describe("tool syntax by template family", () => {
  it("recognises each family from its template", () => {
    expect(toolSyntaxFor(HERMES_TEMPLATE).family).toBe("hermes");
    expect(toolSyntaxFor(REASONING_TEMPLATE).family).toBe("hermes");
    expect(toolSyntaxFor(LLAMA3_TEMPLATE).family).toBe("llama3");
    expect(toolSyntaxFor(MISTRAL_TEMPLATE).family).toBe("mistral");
    expect(toolSyntaxFor(CHATML_TEMPLATE).family).toBe("generic");
  });
});

function toolsConstraint(
  choice: NonNullable<OutputConstraint["tools"]>["choice"],
  parallel = true,
): OutputConstraint {
  return { tools: { definitions: [WEATHER, TIME], choice, parallel, param: "tools" } };
}

describe("the output grammar", () => {
  const weatherCall =
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n</tool_call>';
  const timeCall = '<tool_call>\n{"name": "get_time", "arguments": {"any": true}}\n</tool_call>';

  it("holds required calls to their schemas, in parallel or one at a time", async () => {
    const syntax = toolSyntaxFor(HERMES_TEMPLATE);
    const parallel = planOutput(toolsConstraint({ mode: "required" }), syntax, "off");
    expect(parallel.grammar?.lazy).toBeUndefined();
    const m = await gbnfMatcher(parallel.grammar?.gbnf ?? "");
    expect(m.accepts(weatherCall)).toBe(true);
    expect(m.accepts(`${weatherCall}\n${timeCall}`)).toBe(true);
    expect(m.accepts(weatherCall.replace('"c"', '"k"'))).toBe(false);
    expect(m.accepts("Sure!")).toBe(false);
    const single = await gbnfMatcher(
      planOutput(toolsConstraint({ mode: "required" }, false), syntax, "off").grammar?.gbnf ?? "",
    );
    expect(single.accepts(`${weatherCall}\n${timeCall}`)).toBe(false);
  });

  it("limits a named or allowed choice to those tools", async () => {
    const syntax = toolSyntaxFor(HERMES_TEMPLATE);
    const named = await gbnfMatcher(
      planOutput(toolsConstraint({ mode: "named", name: "get_time" }), syntax, "off").grammar?.gbnf ?? "",
    );
    expect(named.accepts(timeCall)).toBe(true);
    expect(named.accepts(weatherCall)).toBe(false);
    const allowed = planOutput(
      toolsConstraint({ mode: "allowed", names: ["get_weather"], required: false }),
      syntax,
      "off",
    );
    expect(allowed.grammar?.lazy).toEqual({ words: ["<tool_call>"], patterns: [] });
    const m = await gbnfMatcher(allowed.grammar?.gbnf ?? "");
    expect(m.accepts(weatherCall)).toBe(true);
    expect(m.accepts(timeCall)).toBe(false);
  });

  it("writes each family's own call format", async () => {
    const llama = await gbnfMatcher(
      planOutput(toolsConstraint({ mode: "required" }), toolSyntaxFor(LLAMA3_TEMPLATE), "off").grammar
        ?.gbnf ?? "",
    );
    expect(llama.accepts('{"name": "get_time", "parameters": {}}')).toBe(true);
    expect(llama.accepts('{"name": "get_time", "arguments": {}}')).toBe(false);
    const mistral = await gbnfMatcher(
      planOutput(toolsConstraint({ mode: "required" }), toolSyntaxFor(MISTRAL_TEMPLATE), "off").grammar
        ?.gbnf ?? "",
    );
    expect(
      mistral.accepts(
        '[TOOL_CALLS][{"name": "get_time", "arguments": {}}, {"name": "get_time", "arguments": {}}]',
      ),
    ).toBe(true);
  });

  it("lets auto choose between calls and an answer held to the response format", async () => {
    const constraint: OutputConstraint = {
      ...toolsConstraint({ mode: "auto" }),
      format: { param: "response_format", value: { type: "json_object" } },
    };
    const m = await gbnfMatcher(
      planOutput(constraint, toolSyntaxFor(HERMES_TEMPLATE), "off").grammar?.gbnf ?? "",
    );
    expect(m.accepts(weatherCall)).toBe(true);
    expect(m.accepts('{"answer": 42}')).toBe(true);
    expect(m.accepts("plain words")).toBe(false);
  });

  it("admits reasoning before the answer when the prompt opened it", async () => {
    const constraint: OutputConstraint = {
      format: { param: "response_format", value: { type: "json_object" } },
    };
    const open = await gbnfMatcher(
      planOutput(constraint, toolSyntaxFor(REASONING_TEMPLATE), "open").grammar?.gbnf ?? "",
    );
    expect(open.accepts('some <thoughts> < / here</think>\n\n{"a": 1}')).toBe(true);
    expect(open.accepts('{"a": 1}')).toBe(false);
    const optional = await gbnfMatcher(
      planOutput(constraint, toolSyntaxFor(REASONING_TEMPLATE), "optional").grammar?.gbnf ?? "",
    );
    expect(optional.accepts('{"a": 1}')).toBe(true);
    expect(optional.accepts('<think>x</think>{"a": 1}')).toBe(true);
  });

  it("names the tool whose parameters cannot be enforced", () => {
    const bad: ToolDefinition = {
      name: "bad",
      parameters: { type: "object", properties: { x: { type: "string", format: "hostname-ish" } } },
      strict: true,
      param: "tools[0].function.parameters",
    };
    const constraint: OutputConstraint = {
      tools: { definitions: [bad], choice: { mode: "required" }, parallel: true, param: "tools" },
    };
    let error: unknown;
    try {
      planOutput(constraint, toolSyntaxFor(HERMES_TEMPLATE), "off");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ServiceError);
    expect((error as ServiceError).param).toBe("tools[0].function.parameters.properties.x.format");
  });
});

describe("rendering tools into each family's template", () => {
  const conversation: ChatMessage[] = [
    { role: "system", content: [{ type: "text", text: "Be brief." }] },
    { role: "user", content: [{ type: "text", text: "Weather in Oslo?" }] },
    {
      role: "assistant",
      content: [],
      toolCalls: [{ id: "call_abc123", name: "get_weather", arguments: '{"city": "Oslo", "unit": "c"}' }],
    },
    { role: "tool", toolCallId: "call_abc123", content: [{ type: "text", text: "4 degrees" }] },
  ];
  const context = { bosToken: "<s>", eosToken: "</s>" };

  for (const [family, source] of [
    ["hermes", HERMES_TEMPLATE],
    ["llama3", LLAMA3_TEMPLATE],
    ["mistral", MISTRAL_TEMPLATE],
    ["generic", CHATML_TEMPLATE],
  ] as const) {
    it(`${family}: tools, the call and its result, contents kept as plain text`, () => {
      const template = new ChatTemplate(source, context);
      const syntax = toolSyntaxFor(source);
      const segments = template.renderSegments(conversation, { syntax, tools: [WEATHER] });
      const text = segments.map((s) => s.text).join("");
      expect(text).toContain("get_weather");
      expect(text).toContain('"city": "Oslo"');
      expect(text).toContain("4 degrees");
      const untrusted = segments.filter((s) => !s.trusted).map((s) => s.text);
      expect(untrusted.join("|")).toContain("Weather in Oslo?");
      expect(untrusted.join("|")).toContain("4 degrees");
      if (family === "generic") expect(text).toContain("<tool_response>");
    });
  }

  it("mistral: call ids become the 9 alphanumerics its template insists on, the same for call and result", () => {
    const template = new ChatTemplate(MISTRAL_TEMPLATE, context);
    const text = template.render(conversation, { syntax: toolSyntaxFor(MISTRAL_TEMPLATE), tools: [WEATHER] });
    const ids = [...text.matchAll(/"(?:id|call_id)": "([^"]+)"/g)].map((m) => m[1]);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(/^[A-Za-z0-9]{9}$/);
    expect(ids[1]).toBe(ids[0]);
  });
});
