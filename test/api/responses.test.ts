import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadRequestError, NotFoundError } from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import type { FunctionTool, Response, ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { openStorage } from "../../src/storage/storage.js";
import { type AccessServer, sdkClient, startAccessServer, type WireJson } from "../helpers/access.js";
import { schemaValidator } from "../helpers/json-schema-validator.js";
import { expectMatchesSchema } from "../helpers/openapi.js";
import { inFlightTokens, startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/**
 * The Responses API through the official SDK: stored responses, typed streams, structured
 * output and a function-tool round trip chained by previous_response_id, on the tiny
 * random-weight model (structure held by the grammar).
 */

const TIME_TOOL: FunctionTool = {
  type: "function",
  name: "get_time",
  description: "The time in a zone",
  parameters: {
    type: "object",
    properties: { zone: { type: "string", enum: ["UTC", "CET"] } },
    required: ["zone"],
    additionalProperties: false,
  },
  strict: true,
};

describe("POST /v1/responses", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ model: { context_size: 2048 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers a string input with a stored response; output_text works", async () => {
    const response = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Say hello.",
      max_output_tokens: 16,
    });
    expect(response.id).toMatch(/^resp_/);
    expect(response.object).toBe("response");
    expect(["completed", "incomplete"]).toContain(response.status);
    const message = response.output.find((item) => item.type === "message");
    expect(message?.type === "message" && message.role).toBe("assistant");
    expect(typeof response.output_text).toBe("string");
    expect(response.usage?.input_tokens).toBeGreaterThan(0);
    expect(response.usage?.output_tokens).toBeGreaterThan(0);
    expectMatchesSchema(response, "Response");
    const again = await t.client.responses.retrieve(response.id);
    expect(again.output).toEqual(response.output);
  });

  it("max_output_tokens reached: status incomplete with its reason", async () => {
    const response = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Go on.",
      max_output_tokens: 16,
    });
    if (response.status === "incomplete") {
      expect(response.incomplete_details).toEqual({ reason: "max_output_tokens" });
    } else {
      expect(response.incomplete_details).toBeNull();
    }
  });

  it("streams the typed events in order, each named by its type, numbered without gaps", async () => {
    const stream = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Count.",
      max_output_tokens: 16,
      stream: true,
    });
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe("response.created");
    expect(types[1]).toBe("response.in_progress");
    expect(types).toContain("response.output_item.added");
    expect(types).toContain("response.content_part.added");
    expect(types).toContain("response.output_text.done");
    expect(types).toContain("response.output_item.done");
    expect(["response.completed", "response.incomplete"]).toContain(types.at(-1));
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const deltas = events.flatMap((e) => (e.type === "response.output_text.delta" ? [e.delta] : []));
    const done = events.find((e) => e.type === "response.output_text.done");
    expect(done?.type === "response.output_text.done" && done.text).toBe(deltas.join(""));
    const last = events.at(-1) as { response: Response };
    const message = last.response.output.find((item) => item.type === "message");
    expect(message?.type === "message" && message.content[0]).toMatchObject({ text: deltas.join("") });
  });

  it("the SDK's stream helper gives the final response, and the raw stream names each event", async () => {
    const stream = t.client.responses.stream({ model: TINY_MODEL, input: "Hi", max_output_tokens: 16 });
    const final = await stream.finalResponse();
    expect(final.id).toMatch(/^resp_/);
    const raw = await fetch(`${t.url}/v1/responses`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: TINY_MODEL,
        input: "Hi",
        max_output_tokens: 16,
        stream: true,
        store: false,
      }),
    });
    const text = await raw.text();
    for (const frame of text.trim().split("\n\n")) {
      const [eventLine, dataLine] = frame.split("\n");
      const data = JSON.parse((dataLine ?? "").slice("data: ".length)) as { type: string };
      expect(eventLine).toBe(`event: ${data.type}`);
    }
    expect(text).not.toContain("[DONE]");
  });

  it("text.format json_schema: parse() gives output_parsed that validates", async () => {
    const Answer = z.object({ verdict: z.enum(["yes", "no"]), score: z.number().int().min(0).max(9) });
    const response = await t.client.responses.parse({
      model: TINY_MODEL,
      input: "Judge it.",
      max_output_tokens: 200,
      text: { format: zodTextFormat(Answer, "answer") },
    });
    expect(Answer.parse(response.output_parsed)).toEqual(response.output_parsed);
  });

  it("a function-tool round trip chained by previous_response_id", async () => {
    const first = await t.client.responses.create({
      model: TINY_MODEL,
      input: "What time is it in Oslo?",
      tools: [TIME_TOOL],
      tool_choice: "required",
      parallel_tool_calls: false,
      max_output_tokens: 400,
    });
    const call = first.output.find((item) => item.type === "function_call");
    expect(call?.type).toBe("function_call");
    if (call?.type !== "function_call") return;
    expect(call.call_id).toMatch(/^call_/);
    expect(call.name).toBe("get_time");
    expect(schemaValidator(TIME_TOOL.parameters as object)(JSON.parse(call.arguments))).toBe(true);
    expectMatchesSchema(first, "Response");

    const second = await t.client.responses.create({
      model: TINY_MODEL,
      previous_response_id: first.id,
      input: [{ type: "function_call_output", call_id: call.call_id, output: "12:00" }],
      tools: [TIME_TOOL],
      max_output_tokens: 16,
    });
    expect(second.previous_response_id).toBe(first.id);
    // The chain is the context: the earlier turns' tokens are in this one's prompt.
    expect(second.usage?.input_tokens).toBeGreaterThan(first.usage?.input_tokens ?? 0);
    const items = await t.client.responses.inputItems.list(second.id);
    expect(items.data.map((item) => item.type)).toEqual(["function_call_output"]);
  });

  it("streams a function call as arguments deltas, then done with the whole arguments", async () => {
    const stream = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Time?",
      tools: [TIME_TOOL],
      tool_choice: "required",
      parallel_tool_calls: false,
      max_output_tokens: 400,
      stream: true,
    });
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    const deltas = events.flatMap((e) =>
      e.type === "response.function_call_arguments.delta" ? [e.delta] : [],
    );
    const done = events.find((e) => e.type === "response.function_call_arguments.done");
    expect(done?.type === "response.function_call_arguments.done" && done.arguments).toBe(deltas.join(""));
    const added = events.find((e) => e.type === "response.output_item.added");
    expect(added?.type === "response.output_item.added" && added.item.type).toBe("function_call");
  });

  it("input_items lists a response's input, newest first by default, with pagination", async () => {
    const response = await t.client.responses.create({
      model: TINY_MODEL,
      input: [
        { role: "developer", content: "Be brief." },
        { role: "user", content: "One" },
        { role: "assistant", content: "Two" },
        { role: "user", content: [{ type: "input_text", text: "Three" }] },
      ],
      max_output_tokens: 16,
    });
    const all = await t.client.responses.inputItems.list(response.id);
    expect(all.data).toHaveLength(4);
    expect(all.data[0]).toMatchObject({ type: "message", role: "user" });
    const asc = await t.client.responses.inputItems.list(response.id, { order: "asc", limit: 2 });
    expect(asc.data.map((item) => (item as WireJson).role)).toEqual(["developer", "user"]);
    expect(asc.has_more).toBe(true);
    const rest = await t.client.responses.inputItems.list(response.id, {
      order: "asc",
      after: asc.data[1]?.id,
    });
    expect(rest.data.map((item) => (item as WireJson).role)).toEqual(["assistant", "user"]);
  });

  it("store: false is not kept; delete removes a stored one", async () => {
    const unstored = await t.client.responses.create({
      model: TINY_MODEL,
      input: "x",
      store: false,
      max_output_tokens: 16,
    });
    await expect(t.client.responses.retrieve(unstored.id)).rejects.toBeInstanceOf(NotFoundError);
    const stored = await t.client.responses.create({ model: TINY_MODEL, input: "x", max_output_tokens: 16 });
    await t.client.responses.delete(stored.id);
    await expect(t.client.responses.retrieve(stored.id)).rejects.toBeInstanceOf(NotFoundError);
    const err = await t.client.responses
      .create({ model: TINY_MODEL, input: "x", previous_response_id: stored.id, max_output_tokens: 16 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).param).toBe("previous_response_id");
  });

  it("truncation auto drops the oldest turns to fit; disabled refuses what does not fit", async () => {
    const turns = Array.from({ length: 60 }, (_, i) => ({
      role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
      content: `Turn ${i}: ${"many words that fill the context window ".repeat(3)}`,
    }));
    const err = await t.client.responses
      .create({ model: TINY_MODEL, input: turns, max_output_tokens: 16 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).code).toBe("context_length_exceeded");
    const response = await t.client.responses.create({
      model: TINY_MODEL,
      input: turns,
      max_output_tokens: 16,
      truncation: "auto",
    });
    expect(response.truncation).toBe("auto");
    expect(response.usage?.input_tokens).toBeLessThanOrEqual(2048 - 16);
    // Every input item is still listed: truncation shortens the context, not the record.
    const listed = await t.client.responses.inputItems.list(response.id, { limit: 100 });
    expect(listed.data).toHaveLength(60);
  });

  describe("bad input", () => {
    const cases: { name: string; body: Record<string, unknown>; param: string }[] = [
      { name: "an unknown field", body: { frobnicate: 1 }, param: "frobnicate" },
      {
        name: "a function_call_output answering no call",
        body: { input: [{ type: "function_call_output", call_id: "call_x", output: "1" }] },
        param: "input[0].call_id",
      },
      {
        name: "tool_choice naming an unknown function",
        body: { tools: [TIME_TOOL], tool_choice: { type: "function", name: "nope" } },
        param: "tool_choice.name",
      },
      {
        name: "a schema a grammar cannot hold",
        body: {
          text: {
            format: {
              type: "json_schema",
              name: "x",
              strict: true,
              schema: { type: "object", properties: { a: { type: "string", format: "no-such" } } },
            },
          },
        },
        param: "text.format.schema.properties.a.format",
      },
      {
        name: "an image address that is neither http(s) nor a data URL",
        body: {
          input: [{ role: "user", content: [{ type: "input_image", image_url: "file:///etc/passwd" }] }],
        },
        param: "input[0].content[0].image_url",
      },
      {
        name: "an include this server cannot give",
        body: { include: ["reasoning.encrypted_content"] },
        param: "include[0]",
      },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}`, async () => {
        const err = await t.client.responses
          .create({ model: TINY_MODEL, input: "x", max_output_tokens: 16, ...c.body } as never)
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BadRequestError);
        expect((err as BadRequestError).param).toBe(c.param);
      });
    }
  });
});

describe("stored responses belong to their project", () => {
  let t: AccessServer;
  beforeAll(async () => {
    t = await startAccessServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("another project's key gets 404 for retrieve, input_items, delete and previous_response_id", async () => {
    const a = await t.admin.projectWithKey();
    const b = await t.admin.projectWithKey();
    const owner = sdkClient(t.url, a.key.secret);
    const stranger = sdkClient(t.url, b.key.secret);
    const response = await owner.responses.create({
      model: TINY_MODEL,
      input: "mine",
      max_output_tokens: 16,
    });
    await expect(stranger.responses.retrieve(response.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.responses.inputItems.list(response.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.responses.delete(response.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      stranger.responses.create({
        model: TINY_MODEL,
        input: "x",
        previous_response_id: response.id,
        max_output_tokens: 16,
      }),
    ).rejects.toBeInstanceOf(NotFoundError);
    expect((await owner.responses.retrieve(response.id)).id).toBe(response.id);
  });
});

describe("background responses", () => {
  let t: TestServer;
  const dataDir = mkdtempSync(join(tmpdir(), "sb-bg-"));
  beforeAll(async () => {
    // A response left running by a server that died (kill -9): its row says in_progress.
    const storage = await openStorage({ url: join(dataDir, "switchboard.db") });
    await storage.responses.save({
      id: "resp_orphan",
      projectId: "proj_default",
      createdAt: Date.now(),
      previousResponseId: null,
      status: "in_progress",
      heartbeatAt: Date.now(),
      responseJson: JSON.stringify({
        id: "resp_orphan",
        object: "response",
        status: "in_progress",
        background: true,
        output: [],
      }),
      inputJson: "[]",
    });
    await storage.close();
    t = await startTestServer({ config: { data_dir: dataDir }, model: { context_size: 2048 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function settled(id: string): Promise<Response> {
    for (;;) {
      const response = await t.client.responses.retrieve(id);
      if (response.status !== "queued" && response.status !== "in_progress") return response;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it("answers at once with a queued response that runs to completion on its own", async () => {
    const queued = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Tell a story.",
      background: true,
      max_output_tokens: 32,
    });
    expect(queued.status).toBe("queued");
    expect(queued.background).toBe(true);
    const done = await settled(queued.id);
    expect(["completed", "incomplete"]).toContain(done.status);
    expect(done.output.length).toBeGreaterThan(0);
    expect(done.usage?.output_tokens).toBeGreaterThan(0);
  });

  it("cancel stops a running one: status cancelled", async () => {
    const queued = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Go on for a long time.",
      background: true,
      max_output_tokens: inFlightTokens(1500),
    });
    const cancelled = await t.client.responses.cancel(queued.id);
    expect(cancelled.status).toBe("cancelled");
    expect((await t.client.responses.retrieve(queued.id)).status).toBe("cancelled");
  });

  it("streams its events, and a client can pick the stream up again after any sequence number", async () => {
    const stream = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Count.",
      background: true,
      stream: true,
      max_output_tokens: 16,
    });
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) events.push(event);
    expect(events[0]?.type).toBe("response.created");
    expect(["response.completed", "response.incomplete"]).toContain(events.at(-1)?.type);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const id = (events[0] as { response: Response }).response.id;
    const resumed: ResponseStreamEvent[] = [];
    const again = await t.client.responses.retrieve(id, { stream: true, starting_after: 3 });
    for await (const event of again) resumed.push(event);
    expect(resumed.map((e) => e.sequence_number)).toEqual(events.slice(4).map((e) => e.sequence_number));
  });

  it("a response orphaned by a server that died is marked failed, never left in progress", async () => {
    const orphan = await t.client.responses.retrieve("resp_orphan");
    expect(orphan.status).toBe("failed");
    expect(orphan.error?.code).toBe("server_error");
  });

  it("a response that is not background cannot be cancelled or streamed again", async () => {
    const plain = await t.client.responses.create({ model: TINY_MODEL, input: "x", max_output_tokens: 16 });
    await expect(t.client.responses.cancel(plain.id)).rejects.toBeInstanceOf(BadRequestError);
    await expect(
      t.client.responses.create({ model: TINY_MODEL, input: "x", background: true, store: false }),
    ).rejects.toBeInstanceOf(BadRequestError);
  });
});
