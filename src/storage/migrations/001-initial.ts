import { type CreateTableBuilder, type Kysely, sql } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/** Projects and keys carry the same optional limits (null = no limit at that level). */
function withLimitColumns(table: CreateTableBuilder<string, never>): CreateTableBuilder<string, never> {
  return table
    .addColumn("requests_per_minute", "integer")
    .addColumn("tokens_per_minute", "bigint")
    .addColumn("max_concurrent", "integer")
    .addColumn("monthly_token_budget", "bigint")
    .addColumn("monthly_cost_budget_usd", sql`double precision`);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  const projects = db.schema
    .createTable("projects")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("name", "varchar(256)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("archived_at", "bigint");
  await withLimitColumns(projects).execute();

  const apiKeys = db.schema
    .createTable("api_keys")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull().references("projects.id"))
    .addColumn("name", "varchar(256)", (c) => c.notNull())
    .addColumn("key_hash", "varchar(64)", (c) => c.notNull().unique())
    .addColumn("key_hint", "varchar(32)", (c) => c.notNull())
    .addColumn("role", "varchar(16)", (c) => c.notNull())
    .addColumn("allowed_models", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint")
    .addColumn("revoked_at", "bigint")
    .addColumn("last_used_at", "bigint");
  await withLimitColumns(apiKeys).execute();
  await db.schema
    .createIndex("api_keys_project_idx")
    .on("api_keys")
    .columns(["project_id", "created_at"])
    .execute();

  await db.schema
    .createTable("usage_records")
    .addColumn("id", "varchar(40)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("key_id", "varchar(64)")
    .addColumn("model", "varchar(256)", (c) => c.notNull())
    .addColumn("deployment", "varchar(256)", (c) => c.notNull())
    .addColumn("endpoint", "varchar(64)", (c) => c.notNull())
    .addColumn("prompt_tokens", "integer", (c) => c.notNull())
    .addColumn("completion_tokens", "integer", (c) => c.notNull())
    .addColumn("cached_tokens", "integer", (c) => c.notNull())
    .addColumn("cost_usd", sql`double precision`, (c) => c.notNull())
    .addColumn("latency_ms", "integer", (c) => c.notNull())
    .addColumn("status", "integer", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("day", "varchar(10)", (c) => c.notNull())
    .addColumn("month", "varchar(7)", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("usage_project_day_idx")
    .on("usage_records")
    .columns(["project_id", "day"])
    .execute();
  await db.schema
    .createIndex("usage_key_month_idx")
    .on("usage_records")
    .columns(["key_id", "month"])
    .execute();
  await db.schema
    .createIndex("usage_project_month_idx")
    .on("usage_records")
    .columns(["project_id", "month"])
    .execute();

  // Requests made while auth is off (loopback, no keys) belong to this project.
  await db
    .insertInto("projects" as never)
    .values({ id: "proj_default", name: "Default project", created_at: Date.now() } as never)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("usage_records").execute();
  await db.schema.dropTable("api_keys").execute();
  await db.schema.dropTable("projects").execute();
}
