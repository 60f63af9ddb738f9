import { Redis } from "ioredis";
import { randomId } from "../../src/core/ids.js";

export const REDIS_URL = process.env.SWITCHBOARD_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

let redisAvailable: Promise<boolean> | undefined;

/** Is the test Redis reachable? When CI requires it (SWITCHBOARD_REQUIRE_REDIS=1), a miss fails. */
export function hasRedis(): Promise<boolean> {
  redisAvailable ??= (async () => {
    const client = new Redis(REDIS_URL, {
      lazyConnect: true,
      connectTimeout: 2000,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    let cause: Error | undefined;
    client.on("error", (err: Error) => {
      cause = err;
    });
    try {
      await client.connect();
      await client.ping();
      return true;
    } catch (err) {
      if (process.env.SWITCHBOARD_REQUIRE_REDIS === "1") {
        throw new Error(
          `Redis is required (SWITCHBOARD_REQUIRE_REDIS=1) but unreachable at ${REDIS_URL}: ${err}`,
        );
      }
      const reason = (cause ?? (err as Error)).message;
      console.warn(
        `\n*** SKIPPING REDIS TESTS: no Redis at ${REDIS_URL} (${reason}). ` +
          "Set SWITCHBOARD_REQUIRE_REDIS=1 to make this a failure. ***\n",
      );
      return false;
    } finally {
      client.disconnect();
    }
  })();
  return redisAvailable;
}

/** A key prefix no other test run uses. */
export function redisTestPrefix(): string {
  return `sbtest:${randomId(12)}:`;
}

/** Deletes every key under `prefix`. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await client.del(...keys);
    } while (cursor !== "0");
  } finally {
    await client.quit();
  }
}

/** Counts the keys under `prefix` (to check that stores clean up after themselves). */
export async function countRedisKeys(prefix: string): Promise<number> {
  const client = new Redis(REDIS_URL);
  try {
    let cursor = "0";
    let count = 0;
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== "0");
    return count;
  } finally {
    await client.quit();
  }
}
