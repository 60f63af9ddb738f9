import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { ApiKeyRepository, UsageRecord, UsageRepository } from "../../src/storage/repositories/types.js";
import { UsageRecorder } from "../../src/usage/usage-recorder.js";

/**
 * The usage recorder against storage that fails: records are written exactly once — kept (not
 * lost) when their write fails, and never written twice when only the keys' last-use write fails.
 */

function record(keyId: string, tokens: number): UsageRecord {
  return {
    projectId: "proj_a",
    keyId,
    model: "tiny",
    deployment: "tiny",
    endpoint: "chat.completions",
    promptTokens: tokens,
    completionTokens: 0,
    cachedTokens: 0,
    costUsd: 0,
    latencyMs: 1,
    status: 200,
    createdAt: Date.now(),
  };
}

function fakeStorage(failures: { insert?: number; touch?: number }) {
  const written: UsageRecord[] = [];
  const touched: string[][] = [];
  let insertFailures = failures.insert ?? 0;
  let touchFailures = failures.touch ?? 0;
  const usage = {
    insertMany: async (records: readonly UsageRecord[]) => {
      if (insertFailures-- > 0) throw new Error("storage down");
      written.push(...records);
    },
  } as unknown as UsageRepository;
  const apiKeys = {
    touch: async (keyIds: string[]) => {
      if (touchFailures-- > 0) throw new Error("storage down");
      touched.push(keyIds);
    },
  } as unknown as ApiKeyRepository;
  return { usage, apiKeys, written, touched };
}

const logger = pino({ level: "silent" });

describe("UsageRecorder when storage fails", () => {
  it("writes records once when only the keys' last-use update fails", async () => {
    const storage = fakeStorage({ touch: 1 });
    const recorder = new UsageRecorder({ ...storage, logger, flushIntervalMs: 60_000 });
    recorder.record(record("key_a", 10));
    recorder.record(record("key_b", 5));
    await recorder.flush();
    expect(storage.written).toHaveLength(2);
    expect(storage.touched).toEqual([]);
    // The next flush retries the last-use update, not the records.
    await recorder.flush();
    expect(storage.written).toHaveLength(2);
    expect(storage.touched.flat().sort()).toEqual(["key_a", "key_b"]);
    await recorder.close();
    expect(storage.written.reduce((n, r) => n + r.promptTokens, 0)).toBe(15);
  });

  it("keeps records whose write failed and writes them with the next flush", async () => {
    const storage = fakeStorage({ insert: 2 });
    const recorder = new UsageRecorder({ ...storage, logger, flushIntervalMs: 60_000 });
    recorder.record(record("key_a", 1));
    await recorder.flush();
    recorder.record(record("key_a", 2));
    await recorder.flush();
    expect(storage.written).toHaveLength(0);
    recorder.record(record("key_b", 3));
    await recorder.close();
    expect(storage.written.map((r) => r.promptTokens)).toEqual([1, 2, 3]);
    expect(storage.touched.flat().sort()).toEqual(["key_a", "key_b"]);
  });

  it("does not mark the bootstrap admin key as a stored key", async () => {
    const storage = fakeStorage({});
    const recorder = new UsageRecorder({ ...storage, logger, flushIntervalMs: 60_000 });
    recorder.record(record("bootstrap", 1));
    await recorder.close();
    expect(storage.written).toHaveLength(1);
    expect(storage.touched.flat()).toEqual([]);
  });
});
