import { type Kysely, PostgresAdapter, sql } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/**
 * Vector stores, the files attached to them (each one also the job that ingests it, leased like a
 * batch line), file batches, and the chunks ingestion writes with their embeddings. Every row
 * carries project_id. Keyword search: a tsvector column with a GIN index on Postgres, an FTS5
 * table on SQLite. The SQLite vector index (sqlite-vec) has one table per vector size and is
 * created when the first vectors of that size arrive.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;

  await db.schema
    .createTable("vector_stores")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("name", "varchar(512)", (c) => c.notNull())
    .addColumn("description", "varchar(1024)")
    .addColumn("metadata", "text")
    .addColumn("embedding_model", "varchar(256)", (c) => c.notNull())
    .addColumn("expires_after_days", "integer")
    .addColumn("expires_at", "bigint")
    .addColumn("last_active_at", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("vector_stores_project_idx")
    .on("vector_stores")
    .columns(["project_id", "created_at"])
    .execute();
  await db.schema.createIndex("vector_stores_expiry_idx").on("vector_stores").column("expires_at").execute();

  await db.schema
    .createTable("vector_store_file_batches")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("vector_store_id", "varchar(64)", (c) => c.notNull())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("cancelled_at", "bigint")
    .execute();
  await db.schema
    .createIndex("vector_store_file_batches_store_idx")
    .on("vector_store_file_batches")
    .column("vector_store_id")
    .execute();

  await db.schema
    .createTable("vector_store_files")
    .addColumn("vector_store_id", "varchar(64)", (c) => c.notNull())
    .addColumn("file_id", "varchar(64)", (c) => c.notNull())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("batch_id", "varchar(64)")
    .addColumn("filename", "varchar(1024)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("error_code", "varchar(32)")
    .addColumn("error_message", "varchar(1024)")
    .addColumn("chunking", "text", (c) => c.notNull())
    .addColumn("attributes", "text")
    .addColumn("usage_bytes", "bigint", (c) => c.notNull())
    .addColumn("caller", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    // The ingestion job: who holds it and until when, and how often it was taken.
    .addColumn("lease_owner", "varchar(64)")
    .addColumn("lease_until", "bigint")
    .addColumn("attempts", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("vector_store_files_pk", ["vector_store_id", "file_id"] as never)
    .execute();
  await db.schema
    .createIndex("vector_store_files_list_idx")
    .on("vector_store_files")
    .columns(["vector_store_id", "created_at"])
    .execute();
  await db.schema
    .createIndex("vector_store_files_pending_idx")
    .on("vector_store_files")
    .columns(["status", "lease_until"])
    .execute();
  await db.schema
    .createIndex("vector_store_files_batch_idx")
    .on("vector_store_files")
    .column("batch_id")
    .execute();

  // A file's text as ingestion read it (pages of a PDF, else one), for …/content.
  await db.schema
    .createTable("vector_store_file_pages")
    .addColumn("vector_store_id", "varchar(64)", (c) => c.notNull())
    .addColumn("file_id", "varchar(64)", (c) => c.notNull())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("vector_store_file_pages_pk", ["vector_store_id", "file_id", "seq"] as never)
    .execute();

  // The chunks, in file order (seq); a chunk's integer id is its row id in the keyword and vector
  // indexes. (vector_store_id, file_id, seq) is unique, so a resumed ingestion cannot add a chunk twice.
  await db.schema
    .createTable("vector_store_chunks")
    .addColumn("id", postgres ? "bigserial" : "integer", (c) => c.primaryKey())
    .addColumn("vector_store_id", "varchar(64)", (c) => c.notNull())
    .addColumn("file_id", "varchar(64)", (c) => c.notNull())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .addColumn("tokens", "integer", (c) => c.notNull())
    // Little-endian float32; "bytea" is Postgres' binary type, SQLite keeps a blob under any name.
    .addColumn("embedding", "bytea", (c) => c.notNull())
    // 1 once its file is completed: only then is it searched (and on SQLite in the indexes).
    .addColumn("searchable", "integer", (c) => c.notNull())
    .addUniqueConstraint("vector_store_chunks_seq", ["vector_store_id", "file_id", "seq"] as never)
    .execute();
  if (postgres) {
    await sql`alter table vector_store_chunks add column text_search tsvector
      generated always as (to_tsvector('english', text)) stored`.execute(db);
    await sql`create index vector_store_chunks_text_idx on vector_store_chunks using gin (text_search)`.execute(
      db,
    );
  } else {
    // Porter stemming over unicode61, as close as SQLite gets to Postgres' english configuration.
    await sql`create virtual table vector_store_chunks_fts using fts5(
      text, vector_store_id unindexed, tokenize = 'porter unicode61')`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  if (!postgres) await sql`drop table if exists vector_store_chunks_fts`.execute(db);
  for (const table of [
    "vector_store_chunks",
    "vector_store_file_pages",
    "vector_store_files",
    "vector_store_file_batches",
    "vector_stores",
  ])
    await db.schema.dropTable(table).execute();
}
