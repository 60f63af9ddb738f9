import type { Kysely } from "kysely";

// Migrations are frozen once released: later changes go in new files.

/**
 * Stored responses (store: true), for retrieval, input_items and previous_response_id chains;
 * conversations and their items, in the order they were added.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("responses")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("previous_response_id", "varchar(64)")
    .addColumn("status", "varchar(32)", (c) => c.notNull())
    // Background responses: the instance running one touches this; a stale one is marked failed.
    .addColumn("heartbeat_at", "bigint")
    .addColumn("response_json", "text", (c) => c.notNull())
    .addColumn("input_json", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("responses_project_created")
    .on("responses")
    .columns(["project_id", "created_at"])
    .execute();
  await db.schema
    .createIndex("responses_status")
    .on("responses")
    .columns(["status", "heartbeat_at"])
    .execute();
  await db.schema
    .createTable("conversations")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("metadata_json", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("conversation_items")
    .addColumn("id", "varchar(64)", (c) => c.primaryKey())
    .addColumn("conversation_id", "varchar(64)", (c) => c.notNull())
    .addColumn("project_id", "varchar(64)", (c) => c.notNull())
    .addColumn("position", "bigint", (c) => c.notNull())
    .addColumn("item_json", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("conversation_items_order")
    .on("conversation_items")
    .columns(["conversation_id", "position"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("conversation_items").execute();
  await db.schema.dropTable("conversations").execute();
  await db.schema.dropTable("responses").execute();
}
