import type { Kysely } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/**
 * Usage rows become roll-ups: each sums the requests of one group in one UTC minute, and says how
 * many. Rows already stored are one request each, hence the default; a constant default adds the
 * column without rewriting the table (SQLite, and Postgres 11 and later).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("usage_records")
    .addColumn("requests", "integer", (c) => c.notNull().defaultTo(1))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("usage_records").dropColumn("requests").execute();
}
