import type { Kysely } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/**
 * What the expiry sweep needs: when a store expired (set once, by the sweep that expires it; from
 * then on it stays expired whatever its expires_at says), who is removing its data until when (a
 * lease, so instances sharing the database do not purge one store together, and a purge cut short
 * is taken up again), and when its data was gone. The index finds stores that are due and not yet
 * purged without reading those purged long ago.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("vector_stores").addColumn("expired_at", "bigint").execute();
  await db.schema.alterTable("vector_stores").addColumn("purge_until", "bigint").execute();
  await db.schema.alterTable("vector_stores").addColumn("purged_at", "bigint").execute();
  await db.schema
    .createIndex("vector_stores_purge_idx")
    .on("vector_stores")
    .columns(["purged_at", "expires_at"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("vector_stores_purge_idx").execute();
  for (const column of ["purged_at", "purge_until", "expired_at"])
    await db.schema.alterTable("vector_stores").dropColumn(column).execute();
}
