import type { Kysely, Transaction } from "kysely";
import type { DatabaseSchema } from "../schema.js";
import { keysetPage } from "./keyset-page.js";
import type { Conversation, ConversationItem, ConversationRepository } from "./types.js";

export class KyselyConversationRepository implements ConversationRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async create(conversation: Conversation, items: readonly ConversationItem[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto("conversations")
        .values({
          id: conversation.id,
          project_id: conversation.projectId,
          created_at: conversation.createdAt,
          metadata_json: conversation.metadataJson,
        })
        .execute();
      await insertItems(trx, conversation.projectId, conversation.id, items, 0);
    });
  }

  async get(projectId: string, id: string): Promise<Conversation | undefined> {
    const row = await this.db
      .selectFrom("conversations")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    return row
      ? {
          id: row.id,
          projectId: row.project_id,
          createdAt: Number(row.created_at),
          metadataJson: row.metadata_json,
        }
      : undefined;
  }

  async updateMetadata(
    projectId: string,
    id: string,
    metadataJson: string,
  ): Promise<Conversation | undefined> {
    await this.db
      .updateTable("conversations")
      .set({ metadata_json: metadataJson })
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .execute();
    return this.get(projectId, id);
  }

  async delete(projectId: string, id: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .deleteFrom("conversations")
        .where("project_id", "=", projectId)
        .where("id", "=", id)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) return false;
      await trx.deleteFrom("conversation_items").where("conversation_id", "=", id).execute();
      return true;
    });
  }

  async append(projectId: string, id: string, items: readonly ConversationItem[]): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const found = await trx
        .selectFrom("conversations")
        .select("id")
        .where("project_id", "=", projectId)
        .where("id", "=", id)
        .executeTakeFirst();
      if (!found) return false;
      const last = await trx
        .selectFrom("conversation_items")
        .select((eb) => eb.fn.max("position").as("position"))
        .where("conversation_id", "=", id)
        .executeTakeFirst();
      const next = last?.position == null ? 0 : Number(last.position) + 1;
      await insertItems(trx, projectId, id, items, next);
      return true;
    });
  }

  async listItems(
    projectId: string,
    id: string,
    page: { order: "asc" | "desc"; after?: string; limit: number },
  ): Promise<ConversationItem[]> {
    let cursor: number | undefined;
    if (page.after !== undefined) {
      const found = await this.db
        .selectFrom("conversation_items")
        .select("position")
        .where("conversation_id", "=", id)
        .where("id", "=", page.after)
        .executeTakeFirst();
      if (!found) return [];
      cursor = Number(found.position);
    }
    const base = this.db
      .selectFrom("conversation_items")
      .select(["id", "item_json", "position"])
      .where("project_id", "=", projectId)
      .where("conversation_id", "=", id);
    const { select } = keysetPage(base, ["position"], {
      order: page.order,
      limit: page.limit,
      ...(cursor === undefined ? {} : { cursor: { values: [cursor] } }),
    });
    const rows = await select.execute();
    return rows.map((row) => ({ id: row.id, itemJson: row.item_json }));
  }

  async getItem(projectId: string, id: string, itemId: string): Promise<ConversationItem | undefined> {
    const row = await this.db
      .selectFrom("conversation_items")
      .select(["id", "item_json"])
      .where("project_id", "=", projectId)
      .where("conversation_id", "=", id)
      .where("id", "=", itemId)
      .executeTakeFirst();
    return row ? { id: row.id, itemJson: row.item_json } : undefined;
  }

  async deleteItem(projectId: string, id: string, itemId: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom("conversation_items")
      .where("project_id", "=", projectId)
      .where("conversation_id", "=", id)
      .where("id", "=", itemId)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}

async function insertItems(
  trx: Transaction<DatabaseSchema>,
  projectId: string,
  conversationId: string,
  items: readonly ConversationItem[],
  firstPosition: number,
): Promise<void> {
  if (items.length === 0) return;
  await trx
    .insertInto("conversation_items")
    .values(
      items.map((item, i) => ({
        id: item.id,
        conversation_id: conversationId,
        project_id: projectId,
        position: firstPosition + i,
        item_json: item.itemJson,
      })),
    )
    .execute();
}
