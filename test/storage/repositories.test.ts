import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStorage, type Storage } from "../../src/storage/storage.js";
import { postgresDatabase, type TestDatabase, testDatabases } from "../helpers/databases.js";

const databases = await testDatabases();
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 20, 12, 0, 0);

describe.each(databases)("storage on $name", (database: TestDatabase) => {
  let storage: Storage;
  beforeAll(async () => {
    storage = await database.open();
  });
  afterAll(async () => {
    await storage?.close();
    await database.drop();
  });

  it("applies migrations once, also when opened again, and has a default project", async () => {
    const again = await (database.schema
      ? openStorage({ url: database.url, schema: database.schema })
      : openStorage({ url: database.url }));
    await again.close();
    const projects = await storage.projects.list();
    expect(projects.map((p) => p.id)).toContain("proj_default");
  });

  it("creates, reads, updates and archives projects with their limits", async () => {
    const created = await storage.projects.create({
      id: "proj_a",
      name: "A",
      limits: { requestsPerMinute: 60, monthlyCostBudgetUsd: 12.5 },
      now: T0,
    });
    expect(created).toMatchObject({
      id: "proj_a",
      name: "A",
      createdAt: T0,
      archivedAt: null,
      limits: { requestsPerMinute: 60, tokensPerMinute: null, monthlyCostBudgetUsd: 12.5 },
    });
    const updated = await storage.projects.update("proj_a", {
      name: "A2",
      limits: { tokensPerMinute: 1000, requestsPerMinute: null },
    });
    expect(updated?.name).toBe("A2");
    expect(updated?.limits).toMatchObject({
      requestsPerMinute: null,
      tokensPerMinute: 1000,
      monthlyCostBudgetUsd: 12.5,
    });
    expect(await storage.projects.update("proj_missing", { name: "x" })).toBeUndefined();

    expect(await storage.projects.archive("proj_a", T0 + 1)).toBe(true);
    expect(await storage.projects.archive("proj_a", T0 + 2)).toBe(false);
    expect((await storage.projects.list()).map((p) => p.id)).not.toContain("proj_a");
    expect((await storage.projects.list({ includeArchived: true })).map((p) => p.id)).toContain("proj_a");
    expect((await storage.projects.get("proj_a"))?.archivedAt).toBe(T0 + 1);
  });

  it("keeps API keys per project: another project can neither read, list, change nor revoke them", async () => {
    await storage.projects.create({ id: "proj_b", name: "B", now: T0 });
    await storage.projects.create({ id: "proj_c", name: "C", now: T0 });
    const key = await storage.apiKeys.create({
      id: "key_b1",
      projectId: "proj_b",
      name: "ci",
      keyHash: "a".repeat(64),
      keyHint: "sk-sb-ab…wxyz",
      role: "member",
      allowedModels: ["tiny"],
      expiresAt: T0 + DAY,
      limits: { maxConcurrent: 2 },
      now: T0,
    });
    expect(key).toMatchObject({
      id: "key_b1",
      projectId: "proj_b",
      allowedModels: ["tiny"],
      limits: { maxConcurrent: 2 },
    });
    expect(await storage.apiKeys.get("proj_c", "key_b1")).toBeUndefined();
    expect(await storage.apiKeys.list("proj_c")).toEqual([]);
    expect(await storage.apiKeys.update("proj_c", "key_b1", { name: "stolen" })).toBeUndefined();
    expect(await storage.apiKeys.revoke("proj_c", "key_b1", T0)).toBe(false);
    expect((await storage.apiKeys.get("proj_b", "key_b1"))?.name).toBe("ci");
  });

  it("finds a key by the hash of its secret and never stores the secret", async () => {
    const found = await storage.apiKeys.findByHash("a".repeat(64));
    expect(found?.id).toBe("key_b1");
    expect(await storage.apiKeys.findByHash("b".repeat(64))).toBeUndefined();
    expect(JSON.stringify(found)).not.toContain("sk-sb-ab12");
  });

  it("refuses two keys with the same hash", async () => {
    await expect(
      storage.apiKeys.create({
        id: "key_dup",
        projectId: "proj_b",
        name: "dup",
        keyHash: "a".repeat(64),
        keyHint: "x",
        role: "member",
        allowedModels: null,
        expiresAt: null,
        now: T0,
      }),
    ).rejects.toThrow();
  });

  it("updates, touches and revokes keys, and counts only active ones", async () => {
    await storage.apiKeys.create({
      id: "key_b2",
      projectId: "proj_b",
      name: "admin",
      keyHash: "c".repeat(64),
      keyHint: "x",
      role: "admin",
      allowedModels: null,
      expiresAt: null,
      now: T0,
    });
    const activeBefore = await storage.apiKeys.countActive(T0);
    expect(
      await storage.apiKeys.update("proj_b", "key_b2", { allowedModels: ["a", "b"], expiresAt: T0 + 5 }),
    ).toMatchObject({
      allowedModels: ["a", "b"],
      expiresAt: T0 + 5,
    });
    expect(await storage.apiKeys.countActive(T0 + 10)).toBe(activeBefore - 1);
    await storage.apiKeys.touch(["key_b2"], T0 + 7);
    expect((await storage.apiKeys.get("proj_b", "key_b2"))?.lastUsedAt).toBe(T0 + 7);
    expect(await storage.apiKeys.revoke("proj_b", "key_b1", T0 + 8)).toBe(true);
    expect(await storage.apiKeys.revoke("proj_b", "key_b1", T0 + 9)).toBe(false);
    expect((await storage.apiKeys.get("proj_b", "key_b1"))?.revokedAt).toBe(T0 + 8);
    expect((await storage.apiKeys.list("proj_b")).map((k) => k.id)).toEqual(["key_b1", "key_b2"]);
  });

  it("records usage in bulk and reports it by project, key, model and day", async () => {
    const record = (over: Partial<Parameters<Storage["usage"]["insertMany"]>[0][number]>) => ({
      projectId: "proj_b",
      keyId: "key_b1",
      model: "tiny",
      deployment: "tiny",
      endpoint: "chat.completions",
      promptTokens: 10,
      completionTokens: 5,
      cachedTokens: 2,
      costUsd: 0.001,
      latencyMs: 12.4,
      status: 200,
      createdAt: T0,
      ...over,
    });
    const many = Array.from({ length: 450 }, (_, i) => record({ createdAt: T0 + (i % 3) * DAY }));
    await storage.usage.insertMany([...many, record({ projectId: "proj_c", keyId: null, model: "other" })]);

    const byDay = await storage.usage.summarize({ projectId: "proj_b", groupBy: ["day"] });
    expect(byDay.map((r) => r.day)).toEqual(["2026-11-20", "2026-11-21", "2026-11-22"]);
    expect(byDay[0]).toMatchObject({
      requests: 150,
      promptTokens: 1500,
      completionTokens: 750,
      cachedTokens: 300,
    });
    expect(byDay[0]?.costUsd).toBeCloseTo(0.15, 6);

    const all = await storage.usage.summarize({ groupBy: ["project", "model"] });
    expect(all).toEqual([
      expect.objectContaining({ projectId: "proj_b", model: "tiny", requests: 450 }),
      expect.objectContaining({ projectId: "proj_c", model: "other", requests: 1 }),
    ]);
    const window = await storage.usage.summarize({
      projectId: "proj_b",
      fromDay: "2026-11-21",
      toDay: "2026-11-21",
      groupBy: [],
    });
    expect(window).toEqual([expect.objectContaining({ requests: 150 })]);
    const byKey = await storage.usage.summarize({ projectId: "proj_c", groupBy: ["key"] });
    expect(byKey).toEqual([expect.objectContaining({ keyId: null, requests: 1 })]);
  });

  it("totals a month's tokens and cost for a project and for a key", async () => {
    const project = await storage.usage.monthTotals({ projectId: "proj_b" }, "2026-11");
    expect(project.tokens).toBe(450 * 15);
    expect(project.costUsd).toBeCloseTo(0.45, 6);
    expect(
      (await storage.usage.monthTotals({ projectId: "proj_b", keyId: "key_b1" }, "2026-11")).tokens,
    ).toBe(450 * 15);
    expect(
      (await storage.usage.monthTotals({ projectId: "proj_b", keyId: "key_b2" }, "2026-11")).tokens,
    ).toBe(0);
    expect((await storage.usage.monthTotals({ projectId: "proj_b" }, "2026-10")).tokens).toBe(0);
  });

  it("writes usage flushes of any size whole: every record once, with its own values", async () => {
    const sizes = [1, 3, 199, 200, 457, 3, 1];
    let n = 0;
    for (const size of sizes) {
      const batch = Array.from({ length: size }, () => {
        n += 1;
        return {
          projectId: "proj_flush",
          keyId: n % 2 === 0 ? "key_even" : null,
          model: "tiny",
          deployment: "tiny",
          endpoint: "chat.completions",
          promptTokens: n,
          completionTokens: 2 * n,
          cachedTokens: 0,
          costUsd: 0,
          latencyMs: 1,
          status: 200,
          createdAt: T0 + n,
        };
      });
      await storage.usage.insertMany(batch);
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    const [summary] = await storage.usage.summarize({ projectId: "proj_flush", groupBy: [] });
    expect(summary).toMatchObject({
      requests: total,
      promptTokens: (total * (total + 1)) / 2,
      completionTokens: total * (total + 1),
    });
    const byKey = await storage.usage.summarize({ projectId: "proj_flush", groupBy: ["key"] });
    const evens = Math.floor(total / 2);
    // Where NULL sorts differs between the databases.
    expect(byKey).toHaveLength(2);
    expect(byKey).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ keyId: null, requests: total - evens }),
        expect.objectContaining({ keyId: "key_even", requests: evens, promptTokens: evens * (evens + 1) }),
      ]),
    );
  });

  it("stores responses per project: another project sees none, delete removes it", async () => {
    const response = {
      id: "resp_1",
      projectId: "proj_default",
      createdAt: T0,
      previousResponseId: null,
      status: "completed",
      heartbeatAt: null,
      responseJson: JSON.stringify({ id: "resp_1", output: [] }),
      inputJson: JSON.stringify([{ id: "msg_1", type: "message" }]),
    };
    await storage.responses.save(response);
    expect(await storage.responses.get("proj_default", "resp_1")).toEqual(response);
    expect(await storage.responses.get("proj_other", "resp_1")).toBeUndefined();
    // Saved again (a response that ran in the background): the object is replaced.
    await storage.responses.save({ ...response, responseJson: '{"id":"resp_1","status":"completed"}' });
    expect((await storage.responses.get("proj_default", "resp_1"))?.responseJson).toContain("completed");
    expect(await storage.responses.delete("proj_other", "resp_1")).toBe(false);
    expect(await storage.responses.delete("proj_default", "resp_1")).toBe(true);
    expect(await storage.responses.get("proj_default", "resp_1")).toBeUndefined();
  });

  it("finds background responses whose instance stopped beating, and finishes each once", async () => {
    const running = (id: string, heartbeatAt: number | null) => ({
      id,
      projectId: "proj_default",
      createdAt: T0,
      previousResponseId: null,
      status: "in_progress",
      heartbeatAt,
      responseJson: "{}",
      inputJson: "[]",
    });
    await storage.responses.save(running("resp_old", T0));
    await storage.responses.save(running("resp_live", T0));
    await storage.responses.heartbeat(["resp_live"], T0 + 60_000);
    expect((await storage.responses.stale(T0 + 30_000)).map((r) => r.id)).toEqual(["resp_old"]);
    expect(await storage.responses.finishUnfinished("resp_old", "failed", '{"status":"failed"}')).toBe(true);
    expect(await storage.responses.finishUnfinished("resp_old", "failed", "{}")).toBe(false);
    expect((await storage.responses.get("proj_default", "resp_old"))?.status).toBe("failed");
    expect(await storage.responses.stale(T0 + 30_000)).toEqual([]);
  });

  it("keeps a conversation's items in order, per project, and deletes them with it", async () => {
    const item = (id: string) => ({ id, itemJson: JSON.stringify({ id, type: "message" }) });
    const conversation = { id: "conv_1", projectId: "proj_default", createdAt: T0, metadataJson: "{}" };
    await storage.conversations.create(conversation, [item("i1"), item("i2")]);
    expect(await storage.conversations.append("proj_default", "conv_1", [item("i3")])).toBe(true);
    expect(await storage.conversations.append("proj_other", "conv_1", [item("x")])).toBe(false);
    const ids = async (page: { order: "asc" | "desc"; after?: string; limit: number }) =>
      (await storage.conversations.listItems("proj_default", "conv_1", page)).map((i) => i.id);
    expect(await ids({ order: "asc", limit: 10 })).toEqual(["i1", "i2", "i3"]);
    expect(await ids({ order: "desc", limit: 2 })).toEqual(["i3", "i2"]);
    expect(await ids({ order: "asc", after: "i1", limit: 10 })).toEqual(["i2", "i3"]);
    expect(
      await storage.conversations.listItems("proj_other", "conv_1", { order: "asc", limit: 10 }),
    ).toEqual([]);
    expect(
      (await storage.conversations.updateMetadata("proj_default", "conv_1", '{"a":"b"}'))?.metadataJson,
    ).toBe('{"a":"b"}');
    expect(await storage.conversations.deleteItem("proj_default", "conv_1", "i2")).toBe(true);
    expect(await ids({ order: "asc", limit: 10 })).toEqual(["i1", "i3"]);
    expect(await storage.conversations.delete("proj_other", "conv_1")).toBe(false);
    expect(await storage.conversations.delete("proj_default", "conv_1")).toBe(true);
    expect(await storage.conversations.getItem("proj_default", "conv_1", "i1")).toBeUndefined();
  });
});

describe.skipIf(!databases.some((d) => d.name === "postgres"))(
  "several schemas in one Postgres database",
  () => {
    it("migrates each schema on its own, whatever the others hold", async () => {
      const [first, second] = [postgresDatabase(), postgresDatabase()];
      try {
        const a = await first.open();
        await a.close();
        // kysely's bookkeeping tables now exist in the first schema; the second must still migrate.
        const b = await second.open();
        expect((await b.projects.list()).map((p) => p.id)).toContain("proj_default");
        await b.close();
      } finally {
        await first.drop();
        await second.drop();
      }
    });
  },
);
