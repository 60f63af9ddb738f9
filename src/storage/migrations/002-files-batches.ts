import type { Kysely } from "kysely";

// Files, uploads, their bytes when kept in the database, batches and their lines.

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("files")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("filename", "varchar(1024)", (c) => c.notNull())
    .addColumn("purpose", "varchar(32)", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    .addColumn("mime_type", "varchar(256)", (c) => c.notNull())
    .addColumn("blob_key", "varchar(64)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint")
    .execute();
  await db.schema
    .createIndex("files_project_idx")
    .on("files")
    .columns(["project_id", "created_at"])
    .execute();
  await db.schema.createIndex("files_expiry_idx").on("files").column("expires_at").execute();

  // The bytes of files when the blob store is the database (instances sharing Postgres).
  // "bytea" is Postgres' binary type; SQLite stores a Buffer as a blob under any declared type.
  await db.schema
    .createTable("blob_chunks")
    .addColumn("blob_key", "varchar(64)", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("data", "bytea", (c) => c.notNull())
    .addPrimaryKeyConstraint("blob_chunks_pk", ["blob_key", "seq"] as never)
    .execute();

  await db.schema
    .createTable("uploads")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("filename", "varchar(1024)", (c) => c.notNull())
    .addColumn("purpose", "varchar(32)", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    .addColumn("mime_type", "varchar(256)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("file_expires_after_s", "integer")
    .addColumn("file_id", "varchar(64)")
    .execute();
  await db.schema.createIndex("uploads_expiry_idx").on("uploads").columns(["status", "expires_at"]).execute();
  await db.schema
    .createTable("upload_parts")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("upload_id", "varchar(64)", (c) => c.notNull())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    .addColumn("blob_key", "varchar(64)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("upload_parts_upload_idx").on("upload_parts").column("upload_id").execute();

  await db.schema
    .createTable("batches")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("endpoint", "varchar(64)", (c) => c.notNull())
    .addColumn("model", "varchar(256)")
    .addColumn("input_file_id", "varchar(64)", (c) => c.notNull())
    .addColumn("completion_window", "varchar(16)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("output_file_id", "varchar(64)")
    .addColumn("error_file_id", "varchar(64)")
    .addColumn("errors", "text")
    .addColumn("metadata", "text")
    .addColumn("caller", "text", (c) => c.notNull())
    .addColumn("output_expires_after_s", "integer")
    .addColumn("total", "integer", (c) => c.notNull())
    .addColumn("completed", "integer", (c) => c.notNull())
    .addColumn("failed", "integer", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("in_progress_at", "bigint")
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("finalizing_at", "bigint")
    .addColumn("completed_at", "bigint")
    .addColumn("failed_at", "bigint")
    .addColumn("expired_at", "bigint")
    .addColumn("cancelling_at", "bigint")
    .addColumn("cancelled_at", "bigint")
    // Who is building the output files, and until when (another instance takes over after).
    .addColumn("finalize_owner", "varchar(64)")
    .addColumn("finalize_until", "bigint")
    .execute();
  await db.schema
    .createIndex("batches_project_idx")
    .on("batches")
    .columns(["project_id", "created_at"])
    .execute();
  await db.schema.createIndex("batches_status_idx").on("batches").column("status").execute();

  await db.schema
    .createTable("batch_lines")
    .addColumn("batch_id", "varchar(64)", (c) => c.notNull())
    .addColumn("line_no", "integer", (c) => c.notNull())
    .addColumn("custom_id", "varchar(512)", (c) => c.notNull())
    .addColumn("body", "text", (c) => c.notNull())
    .addColumn("done", "integer", (c) => c.notNull())
    .addColumn("lease_owner", "varchar(64)")
    .addColumn("lease_until", "bigint")
    .addColumn("attempts", "integer", (c) => c.notNull())
    .addColumn("failed", "integer", (c) => c.notNull())
    .addColumn("result", "text")
    .addPrimaryKeyConstraint("batch_lines_pk", ["batch_id", "line_no"] as never)
    .execute();
  await db.schema
    .createIndex("batch_lines_pending_idx")
    .on("batch_lines")
    .columns(["batch_id", "done", "lease_until"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ["batch_lines", "batches", "upload_parts", "uploads", "blob_chunks", "files"]) {
    await db.schema.dropTable(table).execute();
  }
}
