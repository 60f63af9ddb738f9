import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomId } from "../../src/core/ids.js";
import {
  type AccessServer,
  AdminClient,
  chat,
  expectError,
  newAdminKey,
  startAccessServer,
} from "../helpers/access.js";
import { hasPostgres, POSTGRES_URL } from "../helpers/databases.js";
import { deleteRedisKeys, hasRedis, REDIS_URL, redisTestPrefix } from "../helpers/redis.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * Several instances behind a load balancer: two servers share one Postgres schema (keys,
 * projects, usage) and one Redis prefix (limits), so a key's limits hold across both. Skipped
 * loudly without Postgres or Redis unless SWITCHBOARD_REQUIRE_POSTGRES / _REDIS is 1.
 */

// Both are checked (not short-circuited), so that either REQUIRE flag fails loudly on its own.
const [postgresUp, redisUp] = await Promise.all([hasPostgres(), hasRedis()]);
const available = postgresUp && redisUp;

/** The test Postgres URL with this run's schema as the search path (pg's `options` parameter). */
function urlWithSchema(schema: string): string {
  const url = new URL(POSTGRES_URL);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return url.toString();
}

async function postgres<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

describe.skipIf(!available)("limits shared by two instances through Redis (Postgres for keys)", () => {
  const schema = `t_${randomId(12).toLowerCase()}`;
  const prefix = redisTestPrefix();
  const adminKey = newAdminKey();
  let one: AccessServer;
  let two: AccessServer;

  beforeAll(async () => {
    await postgres((c) => c.query(`create schema ${schema}`));
    const config = {
      database: urlWithSchema(schema),
      redis: REDIS_URL,
      redis_prefix: prefix,
      // Short, so that a revocation on one instance reaches the other soon.
      auth_cache_ttl_ms: 300,
    };
    // One after the other: migrations run once, then the second finds them applied.
    one = await startAccessServer({ adminKey, config });
    two = await startAccessServer({ adminKey, config });
  });
  afterAll(async () => {
    await Promise.allSettled([one?.stop(), two?.stop()]);
    await postgres((c) => c.query(`drop schema if exists ${schema} cascade`));
    await deleteRedisKeys(prefix);
  });

  it("stores keys in the shared schema, not in public", async () => {
    const tables = await postgres(async (c) => {
      const res = await c.query(
        "select table_schema from information_schema.tables where table_name = 'api_keys' and table_schema = $1",
        [schema],
      );
      return res.rows.length;
    });
    expect(tables).toBe(1);
  });

  it("counts requests per minute across both instances", async () => {
    const { key } = await one.admin.projectWithKey(undefined, { limits: { requests_per_minute: 4 } });
    // The key made on one instance works on the other (same database).
    const statuses: number[] = [];
    for (const server of [one, two, two, one]) statuses.push((await chat(server.url, key.secret)).status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    for (const server of [one, two]) {
      const res = await chat(server.url, key.secret);
      expectError(res, 429, { code: "rate_limit_exceeded", type: "rate_limit_error" });
      expect(res.headers.get("x-ratelimit-limit-requests")).toBe("4");
      expect(Number(res.headers.get("retry-after-ms"))).toBeGreaterThan(0);
    }
  });

  it("counts project limits across keys on different instances", async () => {
    const { project, key } = await one.admin.projectWithKey({ requests_per_minute: 2 });
    const other = await two.admin.createKey(project.id);
    expect((await chat(one.url, key.secret)).status).toBe(200);
    expect((await chat(two.url, other.secret)).status).toBe(200);
    expectError(await chat(two.url, key.secret), 429, { code: "rate_limit_exceeded" });
    expectError(await chat(one.url, other.secret), 429, { code: "rate_limit_exceeded" });
  });

  it("shares a monthly token budget", async () => {
    const { key } = await two.admin.projectWithKey({ monthly_token_budget: 1 });
    expect((await chat(two.url, key.secret)).status).toBe(200);
    // The spend is added to Redis as the request settles, which may finish just after the
    // response: the other instance refuses the key from then on.
    const refused = await waitFor(
      "the other instance to see the spent budget",
      async () => {
        const res = await chat(one.url, key.secret);
        return res.status === 429 ? res : undefined;
      },
      3_000,
      50,
    );
    expectError(refused, 429, { code: "insufficient_quota" });
    expectError(await chat(two.url, key.secret), 429, { code: "insufficient_quota" });
  });

  it("revokes at once where revoked and within the auth cache lifetime elsewhere", async () => {
    const admin = new AdminClient(one.url, adminKey);
    const key = await admin.createKey("proj_default");
    expect((await chat(one.url, key.secret)).status).toBe(200);
    expect((await chat(two.url, key.secret)).status).toBe(200);
    await admin.revokeKey("proj_default", key.id);
    expect((await chat(one.url, key.secret)).status).toBe(401);
    await waitFor(
      "the other instance to see the revocation",
      async () => (await chat(two.url, key.secret)).status === 401,
      3_000,
      50,
    );
  });
});

describe("limits when Redis cannot be reached", () => {
  let t: AccessServer;

  beforeAll(async () => {
    // Nothing listens on port 1: every limit-store operation fails fast.
    t = await startAccessServer({
      config: { redis: "redis://127.0.0.1:1", redis_prefix: redisTestPrefix() },
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("refuses limited keys with a clear 503 (fails closed) and serves unlimited ones", async () => {
    const limited = (await t.admin.projectWithKey(undefined, { limits: { requests_per_minute: 100 } })).key;
    const res = await chat(t.url, limited.secret);
    expectError(res, 503, { code: "service_unavailable", type: "server_error" });
    expect(res.headers.get("retry-after")).toBe("1");
    expect(res.text).not.toContain("127.0.0.1:1");
    const budgeted = (await t.admin.projectWithKey({ monthly_token_budget: 1000 })).key;
    expectError(await chat(t.url, budgeted.secret), 503, { code: "service_unavailable" });
    // A key without limits never needs the limit store.
    const free = (await t.admin.projectWithKey()).key;
    expect((await chat(t.url, free.secret)).status).toBe(200);
  });
});
