import { BadRequestError, NotFoundError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, sdkClient, startAccessServer, type WireJson } from "../helpers/access.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

/** /v1/conversations through the official SDK, and responses that continue one. */
describe("conversations", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ model: { context_size: 2048 } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("create with items and metadata, retrieve, update, delete", async () => {
    const conversation = await t.client.conversations.create({
      metadata: { topic: "demo" },
      items: [{ type: "message", role: "user", content: "Hello" }],
    });
    expect(conversation.id).toMatch(/^conv_/);
    expect(conversation.object).toBe("conversation");
    expect(conversation.metadata).toEqual({ topic: "demo" });
    expect((await t.client.conversations.retrieve(conversation.id)).created_at).toBe(conversation.created_at);
    const updated = await t.client.conversations.update(conversation.id, { metadata: { topic: "other" } });
    expect(updated.metadata).toEqual({ topic: "other" });
    const deleted = await t.client.conversations.delete(conversation.id);
    expect(deleted).toMatchObject({ id: conversation.id, object: "conversation.deleted", deleted: true });
    await expect(t.client.conversations.retrieve(conversation.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it("items: add, list in both orders with pagination, retrieve and delete one", async () => {
    const conversation = await t.client.conversations.create({});
    const added = await t.client.conversations.items.create(conversation.id, {
      items: [
        { type: "message", role: "user", content: "one" },
        { type: "message", role: "assistant", content: "two" },
        { type: "message", role: "user", content: [{ type: "input_text", text: "three" }] },
      ],
    });
    expect(added.data).toHaveLength(3);
    const newest = await t.client.conversations.items.list(conversation.id, { limit: 2 });
    expect(newest.data.map((item) => (item as WireJson).content[0].text)).toEqual(["three", "two"]);
    expect(newest.has_more).toBe(true);
    const oldest = await t.client.conversations.items.list(conversation.id, { order: "asc" });
    expect(oldest.data.map((item) => (item as WireJson).content[0].text)).toEqual(["one", "two", "three"]);
    const page = await t.client.conversations.items.list(conversation.id, {
      order: "asc",
      after: oldest.data[0]?.id,
    });
    expect(page.data).toHaveLength(2);
    const id = added.data[1]?.id as string;
    expect(
      await t.client.conversations.items.retrieve(id, { conversation_id: conversation.id }),
    ).toMatchObject({
      id,
      role: "assistant",
    });
    await t.client.conversations.items.delete(id, { conversation_id: conversation.id });
    const after = await t.client.conversations.items.list(conversation.id, { order: "asc" });
    expect(after.data.map((item) => item.id)).not.toContain(id);
  });

  it("a response in a conversation sees its items and appends its input and output", async () => {
    const conversation = await t.client.conversations.create({
      items: [{ type: "message", role: "user", content: "Remember the word banana." }],
    });
    const response = await t.client.responses.create({
      model: TINY_MODEL,
      conversation: conversation.id,
      input: "Which word?",
      max_output_tokens: 16,
    });
    expect(response.conversation?.id).toBe(conversation.id);
    const alone = await t.client.responses.create({
      model: TINY_MODEL,
      input: "Which word?",
      max_output_tokens: 16,
    });
    expect(response.usage?.input_tokens).toBeGreaterThan(alone.usage?.input_tokens ?? 0);
    const items = await t.client.conversations.items.list(conversation.id, { order: "asc" });
    expect(items.data.map((item) => [item.type, (item as WireJson).role])).toEqual([
      ["message", "user"],
      ["message", "user"],
      ["message", "assistant"],
    ]);
    // The output item keeps its id in the conversation.
    expect(items.data[2]?.id).toBe(response.output[0]?.id);
  });

  it("refuses a conversation together with previous_response_id, and an unknown conversation", async () => {
    const conversation = await t.client.conversations.create({});
    const first = await t.client.responses.create({ model: TINY_MODEL, input: "x", max_output_tokens: 16 });
    const both = await t.client.responses
      .create({
        model: TINY_MODEL,
        input: "y",
        conversation: conversation.id,
        previous_response_id: first.id,
        max_output_tokens: 16,
      })
      .catch((e: unknown) => e);
    expect(both).toBeInstanceOf(BadRequestError);
    const missing = await t.client.responses
      .create({ model: TINY_MODEL, input: "y", conversation: "conv_missing", max_output_tokens: 16 })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).param).toBe("conversation");
  });

  it("refuses more than 20 items at a time and an unknown field", async () => {
    const items = Array.from({ length: 21 }, () => ({
      type: "message" as const,
      role: "user" as const,
      content: "x",
    }));
    await expect(t.client.conversations.create({ items })).rejects.toBeInstanceOf(BadRequestError);
    await expect(t.client.conversations.create({ frobnicate: 1 } as never)).rejects.toBeInstanceOf(
      BadRequestError,
    );
  });
});

describe("conversations belong to their project", () => {
  let t: AccessServer;
  beforeAll(async () => {
    t = await startAccessServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("another project's key gets 404 on every route and cannot continue it", async () => {
    const a = await t.admin.projectWithKey();
    const b = await t.admin.projectWithKey();
    const owner = sdkClient(t.url, a.key.secret);
    const stranger = sdkClient(t.url, b.key.secret);
    const conversation = await owner.conversations.create({
      items: [{ type: "message", role: "user", content: "secret" }],
    });
    const item = (await owner.conversations.items.list(conversation.id)).data[0]?.id as string;
    await expect(stranger.conversations.retrieve(conversation.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.conversations.items.list(conversation.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      stranger.conversations.items.retrieve(item, { conversation_id: conversation.id }),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      stranger.conversations.update(conversation.id, { metadata: { x: "y" } }),
    ).rejects.toBeInstanceOf(NotFoundError);
    await expect(stranger.conversations.delete(conversation.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(
      stranger.responses.create({
        model: TINY_MODEL,
        input: "x",
        conversation: conversation.id,
        max_output_tokens: 16,
      }),
    ).rejects.toBeInstanceOf(NotFoundError);
    expect((await owner.conversations.retrieve(conversation.id)).id).toBe(conversation.id);
  });
});
