import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import type pg from "pg";
import * as sqliteVec from "sqlite-vec";
import { MIGRATIONS } from "./migrations/all.js";
import { detectPgvector, type Pgvector } from "./pgvector.js";
import type { DatabaseSchema } from "./schema.js";
import { SqliteStatementCache } from "./sqlite-statement-cache.js";

export type Dialect = "sqlite" | "postgres";

export interface Database {
  db: Kysely<DatabaseSchema>;
  dialect: Dialect;
  /**
   * Why there is no vector index (vector search is an exact scan), or null when there is one:
   * sqlite-vec loaded (SQLite), pgvector enabled (Postgres).
   */
  exactVectorSearchReason: string | null;
  /**
   * pgvector where this Postgres database has it enabled (even with vector_stores.index exact:
   * its index tables are then still kept in step with chunk writes); null elsewhere.
   */
  pgvector: Pgvector | null;
  /**
   * Gives the pages of deleted rows back to the file system where the database does that:
   * SQLite files created with incremental auto-vacuum (older files keep them for new rows until a
   * VACUUM). Postgres reuses the space after its autovacuum: nothing to do.
   */
  reclaimSpace(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** postgres://… or postgresql://… for Postgres; anything else is a SQLite file path. */
  url: string;
  /** Postgres pool size. */
  poolSize?: number;
  /** Postgres schema to use (tests isolate runs this way); created when missing. */
  schema?: string;
  /** vector_stores.index: `exact` never enables pgvector (default `auto`). */
  vectorIndex?: "auto" | "exact";
}

// bigint (20) and numeric (1700: SUM over bigint) arrive as strings from pg; our values fit in a
// double (token counts, unix ms), so read them as numbers.
const NUMERIC_TYPES = new Set([20, 1700]);
function pgTypes(types: typeof pg.types): { getTypeParser: typeof pg.types.getTypeParser } {
  return {
    getTypeParser: ((oid: number, format?: "text" | "binary") =>
      NUMERIC_TYPES.has(oid)
        ? (value: string) => Number(value)
        : types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
  };
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** Opens the database; call migrate() before use. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  if (isPostgresUrl(options.url)) return openPostgres(options);
  return openSqlite(options.url);
}

function openSqlite(path: string): Database {
  const file = path === ":memory:" ? path : resolve(path);
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const sqlite = new SQLite(file);
  // Freed pages (an expired vector store's chunks) can go back to the file system: takes effect
  // on a new database only; an older file keeps them for new rows until a VACUUM.
  sqlite.pragma("auto_vacuum = INCREMENTAL");
  // WAL: readers never block the writer; NORMAL sync is durable across process crashes in WAL
  // mode (only an OS crash can lose the last commits); a busy timeout instead of SQLITE_BUSY.
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("busy_timeout = 5000");
  sqlite.pragma("foreign_keys = ON");
  // Reads through a memory map instead of a read() per page: a vector search scans a store's
  // vectors, which a page cache of a few MiB cannot hold (bench/RESULTS.md).
  sqlite.pragma("mmap_size = 268435456");
  // Pragmas, extensions and exec go to the handle itself; kysely's queries through the cache.
  const statements = new SqliteStatementCache(sqlite);
  const db = new Kysely<DatabaseSchema>({ dialect: new SqliteDialect({ database: statements }) });
  return {
    db,
    dialect: "sqlite",
    exactVectorSearchReason: loadVectorExtension(sqlite),
    pgvector: null,
    // exec, not a prepared statement: each step of incremental_vacuum frees one page, and exec
    // steps to the end. Under kysely's connection, so it never lands inside a transaction.
    reclaimSpace: () =>
      db.connection().execute(async () => {
        sqlite.exec("pragma incremental_vacuum");
      }),
    close: () => db.destroy(),
  };
}

/** Loads sqlite-vec (the vector index); on failure says why vector search will scan instead. */
function loadVectorExtension(sqlite: SQLite.Database): string | null {
  try {
    sqliteVec.load(sqlite);
    return null;
  } catch (err) {
    return `sqlite-vec could not be loaded (${(err as Error).message.slice(0, 200)}), so there is no vector index`;
  }
}

async function openPostgres(options: OpenDatabaseOptions): Promise<Database> {
  // Loaded only when a Postgres URL is configured: an embedded server never pays for the driver.
  const { default: pg } = await import("pg");
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new Error(`invalid schema name ${schema}`);
  if (schema) {
    const admin = new pg.Client({ connectionString: options.url });
    await admin.connect();
    try {
      await admin.query(`create schema if not exists ${schema}`);
    } finally {
      await admin.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    types: pgTypes(pg.types),
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool }) });
  let vectors: Awaited<ReturnType<typeof detectPgvector>>;
  try {
    vectors = await detectPgvector(db, options.vectorIndex !== "exact");
  } catch (err) {
    await db.destroy();
    throw err;
  }
  return {
    db,
    dialect: "postgres",
    exactVectorSearchReason:
      vectors.reason === null ? null : `on Postgres there is no vector index (${vectors.reason})`,
    pgvector: vectors.pgvector,
    reclaimSpace: async () => {},
    close: () => db.destroy(),
  };
}

async function currentSchema(database: Database): Promise<string> {
  const result = await sql<{ schema: string }>`select current_schema() as schema`.execute(database.db);
  const schema = result.rows[0]?.schema;
  if (!schema) throw new Error("Postgres has no current schema: check search_path");
  return schema;
}

/**
 * Applies pending migrations. On Postgres kysely holds an advisory lock meanwhile, so several
 * instances starting together apply each migration exactly once.
 */
export async function migrate(database: Database): Promise<void> {
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => MIGRATIONS },
    // Kysely looks its bookkeeping tables up by name; pinning the schema keeps another schema's
    // tables in the same database (another deployment, a test run) from being mistaken for ours.
    ...(database.dialect === "postgres" ? { migrationTableSchema: await currentSchema(database) } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName;
    throw new Error(`Database migration ${failed ?? ""} failed: ${(error as Error).message}`);
  }
}
