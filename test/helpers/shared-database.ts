import pg from "pg";
import { randomId } from "../../src/core/ids.js";
import { hasPostgres, POSTGRES_URL } from "./databases.js";

/** Where a test server keeps its data: its own SQLite file, or a throwaway Postgres schema. */
export interface ServerDatabase {
  name: "sqlite" | "postgres";
  /** Config entries for startTestServer (`database`, when not the data dir's SQLite). */
  config: Record<string, unknown>;
  /** Creates what the database needs (the schema). */
  setup(): Promise<void>;
  drop(): Promise<void>;
}

export async function postgresQuery<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A Postgres schema of its own, named as the search path in the URL a server is given. */
export function postgresServerDatabase(): ServerDatabase & { schema: string; url: string } {
  const schema = `t_${randomId(12).toLowerCase()}`;
  const url = new URL(POSTGRES_URL);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return {
    name: "postgres",
    schema,
    url: url.toString(),
    config: { database: url.toString() },
    setup: () => postgresQuery((c) => c.query(`create schema ${schema}`)).then(() => {}),
    drop: () => postgresQuery((c) => c.query(`drop schema if exists ${schema} cascade`)).then(() => {}),
  };
}

export function sqliteServerDatabase(): ServerDatabase {
  return { name: "sqlite", config: {}, setup: async () => {}, drop: async () => {} };
}

/** SQLite always; Postgres when it is reachable (or required). */
export async function serverDatabases(): Promise<ServerDatabase[]> {
  return (await hasPostgres())
    ? [sqliteServerDatabase(), postgresServerDatabase()]
    : [sqliteServerDatabase()];
}
