import type { Kysely } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/**
 * What the sweeper needs to find blobs nothing refers to (a crash between writing the bytes and
 * recording them): when each database chunk was written (null for chunks from before: old), and
 * indexes to ask whether a file or an upload part refers to a blob.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("blob_chunks").addColumn("written_at", "bigint").execute();
  await db.schema.createIndex("files_blob_idx").on("files").column("blob_key").execute();
  await db.schema.createIndex("upload_parts_blob_idx").on("upload_parts").column("blob_key").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("upload_parts_blob_idx").execute();
  await db.schema.dropIndex("files_blob_idx").execute();
  await db.schema.alterTable("blob_chunks").dropColumn("written_at").execute();
}
