import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { randomId } from "../../src/core/ids.js";
import { openStorage, type Storage } from "../../src/storage/storage.js";

export const POSTGRES_URL =
  process.env.SWITCHBOARD_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export interface TestDatabase {
  name: "sqlite" | "postgres";
  /** The URL a server config would use for this database. */
  url: string;
  /** Postgres schema isolating this test run (undefined for SQLite). */
  schema?: string;
  open(): Promise<Storage>;
  /** Removes everything the run created. */
  drop(): Promise<void>;
}

let postgresAvailable: Promise<boolean> | undefined;

/** Is the test Postgres reachable? When CI requires it (SWITCHBOARD_REQUIRE_POSTGRES=1), a miss fails. */
export function hasPostgres(): Promise<boolean> {
  postgresAvailable ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.end();
      return true;
    } catch (err) {
      if (process.env.SWITCHBOARD_REQUIRE_POSTGRES === "1") {
        throw new Error(
          `Postgres is required (SWITCHBOARD_REQUIRE_POSTGRES=1) but unreachable at ${POSTGRES_URL}: ${err}`,
        );
      }
      console.warn(
        `\n*** SKIPPING POSTGRES TESTS: no Postgres at ${POSTGRES_URL} (${(err as Error).message}). ` +
          "Set SWITCHBOARD_REQUIRE_POSTGRES=1 to make this a failure. ***\n",
      );
      return false;
    }
  })();
  return postgresAvailable;
}

export function sqliteDatabase(): TestDatabase {
  const dir = mkdtempSync(join(tmpdir(), "sb-sqlite-"));
  const url = join(dir, "switchboard.db");
  return { name: "sqlite", url, open: () => openStorage({ url }), drop: async () => {} };
}

export function postgresDatabase(): TestDatabase {
  const schema = `t_${randomId(12).toLowerCase()}`;
  return {
    name: "postgres",
    url: POSTGRES_URL,
    schema,
    open: () => openStorage({ url: POSTGRES_URL, schema, poolSize: 4 }),
    drop: async () => {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        await client.query(`drop schema if exists ${schema} cascade`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Every database the storage suite runs over, in order. */
export async function testDatabases(): Promise<TestDatabase[]> {
  return (await hasPostgres()) ? [sqliteDatabase(), postgresDatabase()] : [sqliteDatabase()];
}
