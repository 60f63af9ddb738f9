import type { Kysely } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/**
 * A counter per store that every change to its searchable chunks raises in the same transaction
 * (a file completed, detached, failed, re-attached or cancelled): an instance holding a store's
 * vectors in memory compares it on every search, so a write through any instance sharing the
 * database is seen by the next search everywhere.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("vector_stores")
    .addColumn("vectors_version", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("vector_stores").dropColumn("vectors_version").execute();
}
