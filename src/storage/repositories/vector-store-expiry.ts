import { type Kysely, type Selectable, sql } from "kysely";
import type { Dialect } from "../database.js";
import type { DatabaseSchema, VectorStoresTable } from "../schema.js";
import { dropChunks, toVectorStore } from "./vector-store-rows.js";
import type { StoredVectorStore } from "./vector-store-types.js";

/**
 * The expiry side of vector stores: a store whose expires_at passed is marked expired (for good)
 * and its data removed file by file, while the store row and its file rows stay. The sweep that
 * does it runs on every instance; a store is taken under a purge lease (FOR UPDATE SKIP LOCKED
 * on Postgres), and every removal is idempotent, so two instances at once do no harm.
 */
export class KyselyVectorStoreExpiry {
  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: Dialect,
  ) {}

  async claimExpired(now: number, leaseMs: number, max: number): Promise<StoredVectorStore[]> {
    if (max <= 0) return [];
    const lock = this.dialect === "postgres" ? sql`for update skip locked` : sql``;
    return this.db.transaction().execute(async (trx) => {
      const taken = await sql<Selectable<VectorStoresTable>>`
        update vector_stores set purge_until = ${now + leaseMs}, expired_at = coalesce(expired_at, ${now})
        where id in (
          select id from vector_stores
          where purged_at is null and expires_at <= ${now} and (purge_until is null or purge_until < ${now})
          order by expires_at, id
          limit ${max}
          ${lock}
        )
        returning *`.execute(trx);
      const ids = taken.rows.map((r) => r.id);
      if (ids.length === 0) return [];
      // Batches first (they are found through their unfinished files), then the files: the
      // ingestion of a cancelled file can write nothing more (its writes check it is in_progress).
      await trx
        .updateTable("vector_store_file_batches")
        .set({ cancelled_at: now })
        .where("vector_store_id", "in", ids)
        .where("cancelled_at", "is", null)
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom("vector_store_files as f")
              .select("f.file_id")
              .whereRef("f.batch_id", "=", "vector_store_file_batches.id")
              .where("f.status", "=", "in_progress"),
          ),
        )
        .execute();
      await trx
        .updateTable("vector_store_files")
        .set({ status: "cancelled", lease_owner: null, lease_until: null })
        .where("vector_store_id", "in", ids)
        .where("status", "=", "in_progress")
        .execute();
      return taken.rows.map(toVectorStore);
    });
  }

  async purgeExpiredFile(storeId: string): Promise<boolean> {
    const fileId = await this.fileWithData(storeId);
    if (fileId === undefined) return false;
    return this.db.transaction().execute(async (trx) => {
      const expired = await trx
        .selectFrom("vector_stores")
        .select("id")
        .where("id", "=", storeId)
        .where("expired_at", "is not", null)
        .executeTakeFirst();
      if (!expired) return false;
      await dropChunks(trx, this.dialect, { storeId, fileIds: [fileId] });
      await trx
        .updateTable("vector_store_files")
        .set({ usage_bytes: 0 })
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .execute();
      return true;
    });
  }

  async finishPurge(storeId: string, now: number): Promise<void> {
    await this.db
      .updateTable("vector_stores")
      .set({ purged_at: now, purge_until: null })
      .where("id", "=", storeId)
      .where("purged_at", "is", null)
      .execute();
  }

  /** A file of the store that still has chunks, pages or usage counted; each lookup reads one index entry. */
  private async fileWithData(storeId: string): Promise<string | undefined> {
    for (const table of ["vector_store_chunks", "vector_store_file_pages"] as const) {
      const row = await this.db
        .selectFrom(table)
        .select("file_id")
        .where("vector_store_id", "=", storeId)
        .limit(1)
        .executeTakeFirst();
      if (row) return row.file_id;
    }
    const counted = await this.db
      .selectFrom("vector_store_files")
      .select("file_id")
      .where("vector_store_id", "=", storeId)
      .where("usage_bytes", ">", 0)
      .limit(1)
      .executeTakeFirst();
    return counted?.file_id;
  }
}
