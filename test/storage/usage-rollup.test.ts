import { Migrator } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/storage/database.js";
import { MIGRATIONS } from "../../src/storage/migrations/all.js";
import type { UsageGroup, UsageRecord, UsageSummaryRow } from "../../src/storage/repositories/types.js";
import type { Storage } from "../../src/storage/storage.js";
import { type TestDatabase, testDatabases } from "../helpers/databases.js";

/**
 * Usage is stored rolled up (a row per group and UTC minute of a flush): reports and budgets must
 * answer exactly what they answered when every request was its own row.
 */

const databases = await testDatabases();
const MINUTE = 60_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 10, 30, 23, 58, 10);

/** A deterministic stream of numbers in [0, 1). */
function numbers(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

function request(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    projectId: "proj_roll",
    keyId: "key_1",
    model: "tiny",
    deployment: "tiny",
    endpoint: "chat.completions",
    promptTokens: 10,
    completionTokens: 5,
    cachedTokens: 2,
    costUsd: 0.001,
    latencyMs: 12.5,
    status: 200,
    createdAt: T0,
    ...over,
  };
}

/** Records of mixed groups over a few minutes that cross a day and a month. */
function mixedRecords(count: number, seed: number, projectId: string): UsageRecord[] {
  const next = numbers(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
  return Array.from({ length: count }, () =>
    request({
      projectId: pick([projectId, `${projectId}_b`]),
      keyId: pick(["key_1", "key_2", null]),
      model: pick(["tiny", "other"]),
      deployment: pick(["dep_a", "dep_b"]),
      endpoint: pick(["chat.completions", "embeddings"]),
      status: pick([200, 200, 200, 429, 500]),
      promptTokens: Math.floor(next() * 1000),
      completionTokens: Math.floor(next() * 500),
      cachedTokens: Math.floor(next() * 100),
      costUsd: Math.floor(next() * 1000) / 1e6,
      latencyMs: next() * 3000,
      createdAt: T0 + Math.floor(next() * 4 * MINUTE),
    }),
  );
}

/** What the reports said when each request was a row: the same sums, computed here. */
function expectedSummary(records: readonly UsageRecord[], groupBy: UsageGroup[]): UsageSummaryRow[] {
  const groups = new Map<string, UsageSummaryRow>();
  for (const r of records) {
    const day = new Date(r.createdAt).toISOString().slice(0, 10);
    const fields: Partial<UsageSummaryRow> = {};
    if (groupBy.includes("project")) fields.projectId = r.projectId;
    if (groupBy.includes("key")) fields.keyId = r.keyId;
    if (groupBy.includes("model")) fields.model = r.model;
    if (groupBy.includes("day")) fields.day = day;
    const key = JSON.stringify(fields);
    const row = groups.get(key) ?? {
      ...fields,
      requests: 0,
      promptTokens: 0,
      completionTokens: 0,
      cachedTokens: 0,
      costUsd: 0,
    };
    row.requests += 1;
    row.promptTokens += r.promptTokens;
    row.completionTokens += r.completionTokens;
    row.cachedTokens += r.cachedTokens;
    row.costUsd += r.costUsd;
    groups.set(key, row);
  }
  return [...groups.values()];
}

/** Rows in a stable order (where NULL sorts differs between the databases), cost to 9 places. */
function comparable(rows: readonly UsageSummaryRow[]) {
  const canonical = (row: UsageSummaryRow) =>
    JSON.stringify(Object.entries({ ...row, costUsd: Math.round(row.costUsd * 1e9) }).sort());
  return rows.map(canonical).sort();
}

describe.each(databases)("usage roll-up on $name", (database: TestDatabase) => {
  let storage: Storage;
  beforeAll(async () => {
    storage = await database.open();
  });
  afterAll(async () => {
    await storage?.close();
    await database.drop();
  });

  const rows = (projectId: string) =>
    storage.database.db
      .selectFrom("usage_records")
      .selectAll()
      .where("project_id", "=", projectId)
      .orderBy("id")
      .execute();

  it("writes one row per group and minute, with the requests' exact sums", async () => {
    const records = [
      request({ createdAt: T0, latencyMs: 10.4 }),
      request({ createdAt: T0 + 20_000, promptTokens: 7, latencyMs: 20.4 }),
      request({ createdAt: T0 + 49_999, costUsd: 0.5, latencyMs: 30.4 }),
      // The next minute, another key, another status, another endpoint: four more rows.
      request({ createdAt: T0 + 50_000 }),
      request({ keyId: null }),
      request({ status: 500 }),
      request({ endpoint: "embeddings" }),
    ];
    await storage.usage.insertMany(records);
    const stored = await rows("proj_roll");
    expect(stored).toHaveLength(5);
    const minute = Math.floor(T0 / MINUTE) * MINUTE;
    const first = stored.find((r) => r.requests === 3);
    expect(first).toMatchObject({
      key_id: "key_1",
      status: 200,
      endpoint: "chat.completions",
      prompt_tokens: 27,
      completion_tokens: 15,
      cached_tokens: 6,
      latency_ms: 61,
      created_at: minute,
      day: "2026-11-30",
      month: "2026-11",
    });
    expect(first?.cost_usd).toBeCloseTo(0.502, 9);
    expect(stored.find((r) => r.created_at === minute + MINUTE)).toMatchObject({ requests: 1, status: 200 });
    expect(stored.filter((r) => r.created_at === minute)).toHaveLength(4);
    for (const row of stored) expect(row.id).toMatch(/^usage_/);
  });

  it("keeps a minute written by two flushes as two rows that sum right", async () => {
    await storage.usage.insertMany([
      request({ projectId: "proj_twice" }),
      request({ projectId: "proj_twice" }),
    ]);
    await storage.usage.insertMany([request({ projectId: "proj_twice", promptTokens: 1 })]);
    const stored = await rows("proj_twice");
    expect(stored.map((r) => r.requests).sort()).toEqual([1, 2]);
    expect(await storage.usage.summarize({ projectId: "proj_twice", groupBy: [] })).toEqual([
      expect.objectContaining({ requests: 3, promptTokens: 21 }),
    ]);
  });

  it("reports and budgets mixed flushes as it did with a row per request", async () => {
    const flushes = [
      mixedRecords(500, 1, "proj_mix"),
      mixedRecords(137, 2, "proj_mix"),
      mixedRecords(1, 3, "proj_mix"),
    ];
    for (const flush of flushes) await storage.usage.insertMany(flush);
    const records = flushes.flat();
    // One row per distinct group and minute of each flush, never merged across flushes.
    const stored = [...(await rows("proj_mix")), ...(await rows("proj_mix_b"))];
    expect(stored.reduce((n, r) => n + r.requests, 0)).toBe(records.length);
    const distinct = (flush: UsageRecord[]) =>
      new Set(
        flush.map((r) =>
          [
            r.projectId,
            r.keyId,
            r.model,
            r.deployment,
            r.endpoint,
            r.status,
            Math.floor(r.createdAt / MINUTE),
          ].join("|"),
        ),
      ).size;
    expect(stored).toHaveLength(flushes.reduce((n, flush) => n + distinct(flush), 0));

    const groupings: UsageGroup[][] = [
      [],
      ["project"],
      ["key"],
      ["model", "day"],
      ["project", "key", "model", "day"],
    ];
    for (const groupBy of groupings) {
      for (const projectId of ["proj_mix", "proj_mix_b"]) {
        const mine = records.filter((r) => r.projectId === projectId);
        const got = await storage.usage.summarize({ projectId, groupBy });
        expect(comparable(got)).toEqual(comparable(expectedSummary(mine, groupBy)));
        const lastDay = mine.filter((r) => r.createdAt >= Date.UTC(2026, 11, 1));
        const windowed = await storage.usage.summarize({ projectId, fromDay: "2026-12-01", groupBy });
        expect(comparable(windowed)).toEqual(comparable(expectedSummary(lastDay, groupBy)));
      }
    }

    for (const month of ["2026-11", "2026-12"]) {
      for (const keyId of [undefined, "key_2"]) {
        const mine = records.filter(
          (r) =>
            r.projectId === "proj_mix" &&
            new Date(r.createdAt).toISOString().startsWith(month) &&
            (keyId === undefined || r.keyId === keyId),
        );
        const totals = await storage.usage.monthTotals(
          keyId === undefined ? { projectId: "proj_mix" } : { projectId: "proj_mix", keyId },
          month,
        );
        expect(totals.tokens).toBe(mine.reduce((n, r) => n + r.promptTokens + r.completionTokens, 0));
        expect(totals.costUsd).toBeCloseTo(
          mine.reduce((n, r) => n + r.costUsd, 0),
          9,
        );
      }
    }
  });

  it("starts another row before a sum outgrows a 32-bit column", async () => {
    const big = (over: Partial<UsageRecord>) => request({ projectId: "proj_big", ...over });
    await storage.usage.insertMany([
      big({ promptTokens: 1_500_000_000, completionTokens: 0 }),
      big({ promptTokens: 0, completionTokens: 1_000_000_000 }),
      big({ cachedTokens: 2_000_000_000 }),
      big({ cachedTokens: 2_000_000_000 }),
      big({ latencyMs: 2_000_000_000 }),
      big({ latencyMs: 2_000_000_000 }),
    ]);
    expect((await rows("proj_big")).length).toBeGreaterThan(1);
    expect(await storage.usage.summarize({ projectId: "proj_big", groupBy: [] })).toEqual([
      expect.objectContaining({
        requests: 6,
        promptTokens: 1_500_000_040,
        completionTokens: 1_000_000_020,
        cachedTokens: 4_000_000_008,
      }),
    ]);
    const month = new Date(T0).toISOString().slice(0, 7);
    expect((await storage.usage.monthTotals({ projectId: "proj_big" }, month)).tokens).toBe(2_500_000_060);
  });
});

// Fresh databases: this one starts before the roll-up's migration.
describe.each(await testDatabases())("usage migration on $name", (database: TestDatabase) => {
  afterAll(async () => {
    await database.drop();
  });

  it("counts each row stored before the roll-up as one request", async () => {
    const old = await openDatabase({
      url: database.url,
      ...(database.schema ? { schema: database.schema } : {}),
    });
    try {
      const migrator = new Migrator({
        db: old.db,
        provider: { getMigrations: async () => MIGRATIONS },
        ...(database.schema ? { migrationTableSchema: database.schema } : {}),
      });
      const { error } = await migrator.migrateTo("007-vector-store-versions");
      expect(error).toBeUndefined();
      const oldRows = Array.from({ length: 5 }, (_, i) => ({
        id: `usage_old_${i}`,
        project_id: "proj_old",
        key_id: i < 3 ? "key_1" : null,
        model: "tiny",
        deployment: "tiny",
        endpoint: "chat.completions",
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 0,
        cost_usd: 0.25,
        latency_ms: 40,
        status: 200,
        created_at: T0 + i * DAY,
        day: new Date(T0 + i * DAY).toISOString().slice(0, 10),
        month: new Date(T0 + i * DAY).toISOString().slice(0, 7),
      }));
      await old.db
        .insertInto("usage_records")
        .values(oldRows as never)
        .execute();
    } finally {
      await old.close();
    }

    const storage = await database.open();
    try {
      // Old rows and a rolled-up flush after the upgrade, side by side.
      await storage.usage.insertMany([
        request({ projectId: "proj_old" }),
        request({ projectId: "proj_old" }),
      ]);
      const rows = await storage.database.db
        .selectFrom("usage_records")
        .select(["id", "requests"])
        .where("project_id", "=", "proj_old")
        .execute();
      expect(rows.filter((r) => r.id.startsWith("usage_old_")).map((r) => r.requests)).toEqual([
        1, 1, 1, 1, 1,
      ]);
      expect(await storage.usage.summarize({ projectId: "proj_old", groupBy: [] })).toEqual([
        expect.objectContaining({ requests: 7, promptTokens: 70, completionTokens: 35 }),
      ]);
      expect(await storage.usage.summarize({ projectId: "proj_old", groupBy: ["key"] })).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ keyId: "key_1", requests: 5 }),
          expect.objectContaining({ keyId: null, requests: 2 }),
        ]),
      );
      const november = await storage.usage.monthTotals({ projectId: "proj_old" }, "2026-11");
      expect(november.tokens).toBe(15 + 30);
      expect(november.costUsd).toBeCloseTo(0.25 + 0.002, 9);
    } finally {
      await storage.close();
    }
  });
});
