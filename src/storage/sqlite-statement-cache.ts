import type SQLite from "better-sqlite3";
import type { SqliteDatabase } from "kysely";

export interface StatementCacheLimits {
  /** Statements kept at most. */
  statements: number;
  /** Characters of SQL text kept at most, summed over the statements kept. */
  sqlChars: number;
}

/**
 * Statements: each of our storage test files, which between them run nearly every repository
 * query, migrations included, prepares 75 to 151 distinct texts; a server repeats fewer, so they
 * stay prepared. Texts that keep changing (an IN list of another length each time) only cycle
 * through the coldest slots. SQL characters: SQLite holds 10-30 bytes per character of a
 * multi-row INSERT's text (a 200-row usage INSERT, 9.6k characters: ~290 KiB), so this caps the
 * cache near 3-8 MiB when the tails of batch and file-chunk inserts (a row count per file) would
 * otherwise fill every slot; the hot texts need well under a tenth of it.
 */
export const STATEMENT_CACHE_LIMITS: StatementCacheLimits = { statements: 128, sqlChars: 256 * 1024 };

/**
 * better-sqlite3 for kysely, with each SQL text prepared once: kysely's SQLite driver calls
 * prepare() for every query (begin and commit included), and preparing costs more than running
 * many of ours (a 200-row usage INSERT: ~1 ms). Prepared statements stay valid across schema
 * changes: SQLite prepares them again by itself when the schema they were compiled against changed.
 */
export class SqliteStatementCache implements SqliteDatabase {
  /** In use order, least recently used first (a Map iterates in insertion order). */
  private readonly statements = new Map<string, SQLite.Statement>();
  private sqlChars = 0;

  constructor(
    private readonly sqlite: SQLite.Database,
    private readonly limits: StatementCacheLimits = STATEMENT_CACHE_LIMITS,
  ) {}

  /** Statements kept now. */
  get size(): number {
    return this.statements.size;
  }

  prepare(sql: string): SQLite.Statement {
    const cached = this.statements.get(sql);
    if (cached !== undefined) {
      // A statement with an iterate() still open (a kysely stream) cannot run again until that
      // ends: this caller gets a statement of its own.
      if (cached.busy) return this.sqlite.prepare(sql);
      this.statements.delete(sql);
      this.statements.set(sql, cached);
      return cached;
    }
    const statement = this.sqlite.prepare(sql);
    if (sql.length > this.limits.sqlChars) return statement;
    this.statements.set(sql, statement);
    this.sqlChars += sql.length;
    while (this.statements.size > this.limits.statements || this.sqlChars > this.limits.sqlChars) {
      const oldest = this.statements.keys().next().value as string;
      this.statements.delete(oldest);
      this.sqlChars -= oldest.length;
    }
    return statement;
  }

  close(): void {
    this.statements.clear();
    this.sqlChars = 0;
    this.sqlite.close();
  }
}
