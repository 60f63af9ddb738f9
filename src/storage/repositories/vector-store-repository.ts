import { type KeysetPage, keysetPage } from "./keyset-page.js";
import { KyselyVectorIngestion } from "./vector-ingestion-repository.js";
import { KyselyVectorStoreExpiry } from "./vector-store-expiry.js";
import {
  countsOf,
  dropChunks,
  touchStoreVectors,
  toVectorStore,
  toVectorStoreFile,
  vectorStoreFileRow,
  vectorStoreRow,
} from "./vector-store-rows.js";
import type {
  FileAttributes,
  FileCounts,
  NewVectorStore,
  PageQuery,
  StoredFileBatch,
  StoredVectorStore,
  StoredVectorStoreFile,
  VectorStoreFileQuery,
  VectorStoreFileStatus,
  VectorStoreRepository,
  VectorStoreUsage,
} from "./vector-store-types.js";
import { NO_FILES } from "./vector-store-types.js";

/** Stores and files are listed by (created_at, id); each list reads one more than it shows. */
function pageOf(query: PageQuery, cursor: { createdAt: number; id: string } | undefined): KeysetPage {
  return {
    order: query.order,
    limit: query.limit + 1,
    ...(cursor
      ? { cursor: { values: [cursor.createdAt, cursor.id], before: query.before !== undefined } }
      : {}),
  };
}

export class KyselyVectorStoreRepository extends KyselyVectorIngestion implements VectorStoreRepository {
  private readonly expiry = new KyselyVectorStoreExpiry(this.db, this.dialect);

  async create(store: NewVectorStore, files: readonly StoredVectorStoreFile[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto("vector_stores").values(vectorStoreRow(store)).execute();
      if (files.length > 0)
        await trx.insertInto("vector_store_files").values(files.map(vectorStoreFileRow)).execute();
    });
  }

  async get(projectId: string, id: string): Promise<StoredVectorStore | undefined> {
    const row = await this.db
      .selectFrom("vector_stores")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", id)
      .executeTakeFirst();
    return row ? toVectorStore(row) : undefined;
  }

  async list(projectId: string, query: PageQuery): Promise<StoredVectorStore[]> {
    const cursorId = query.after ?? query.before;
    const cursorStore = cursorId === undefined ? undefined : await this.get(projectId, cursorId);
    const base = this.db.selectFrom("vector_stores").selectAll().where("project_id", "=", projectId);
    const { select, finish } = keysetPage(base, ["created_at", "id"], pageOf(query, cursorStore));
    return finish((await select.execute()).map(toVectorStore));
  }

  async update(
    projectId: string,
    id: string,
    patch: Parameters<VectorStoreRepository["update"]>[2],
  ): Promise<StoredVectorStore | undefined> {
    const described: Record<string, unknown> = {};
    if (patch.name !== undefined) described.name = patch.name;
    if (patch.metadata !== undefined)
      described.metadata = patch.metadata === null ? null : JSON.stringify(patch.metadata);
    const expiry: Record<string, unknown> = {};
    if (patch.expiresAfterDays !== undefined) expiry.expires_after_days = patch.expiresAfterDays;
    if (patch.expiresAt !== undefined) expiry.expires_at = patch.expiresAt;
    if (patch.lastActiveAt !== undefined) expiry.last_active_at = patch.lastActiveAt;
    await this.db.transaction().execute(async (trx) => {
      const scoped = () =>
        trx.updateTable("vector_stores").where("project_id", "=", projectId).where("id", "=", id);
      if (Object.keys(described).length > 0) await scoped().set(described).execute();
      // An expired store stays expired: its expiry no longer moves.
      if (Object.keys(expiry).length > 0)
        await scoped().set(expiry).where("expired_at", "is", null).execute();
    });
    return this.get(projectId, id);
  }

  async delete(projectId: string, id: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const removed = await trx
        .deleteFrom("vector_stores")
        .where("project_id", "=", projectId)
        .where("id", "=", id)
        .executeTakeFirst();
      if (Number(removed.numDeletedRows) !== 1) return false;
      await dropChunks(trx, this.dialect, { storeId: id });
      await trx.deleteFrom("vector_store_files").where("vector_store_id", "=", id).execute();
      await trx.deleteFrom("vector_store_file_batches").where("vector_store_id", "=", id).execute();
      return true;
    });
  }

  async usage(projectId: string, ids: readonly string[]): Promise<Map<string, VectorStoreUsage>> {
    const out = new Map<string, VectorStoreUsage>();
    if (ids.length === 0) return out;
    const rows = await this.db
      .selectFrom("vector_store_files")
      .select((eb) => [
        "vector_store_id",
        "status",
        eb.fn.countAll<number>().as("n"),
        eb.fn.sum<number>("usage_bytes").as("bytes"),
      ])
      .where("project_id", "=", projectId)
      .where("vector_store_id", "in", ids)
      .groupBy(["vector_store_id", "status"])
      .execute();
    for (const id of ids) {
      const mine = rows.filter((r) => r.vector_store_id === id);
      out.set(id, {
        usageBytes: mine.reduce((sum, r) => sum + Number(r.bytes ?? 0), 0),
        counts: mine.length === 0 ? { ...NO_FILES } : countsOf(mine),
      });
    }
    return out;
  }

  async attachFiles(
    storeId: string,
    files: readonly StoredVectorStoreFile[],
    batch?: StoredFileBatch,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // A no-op update locks the store's row (Postgres) against the expiry sweep, and tells
      // whether the sweep expired the store before.
      const live = await trx
        .updateTable("vector_stores")
        .set((eb) => ({ last_active_at: eb.ref("last_active_at") }))
        .where("id", "=", storeId)
        .where("expired_at", "is", null)
        .executeTakeFirst();
      if (Number(live.numUpdatedRows) !== 1) return false;
      if (batch) {
        await trx
          .insertInto("vector_store_file_batches")
          .values({
            id: batch.id,
            vector_store_id: batch.vectorStoreId,
            project_id: batch.projectId,
            created_at: batch.createdAt,
            cancelled_at: null,
          })
          .execute();
      }
      const byStore = new Map<string, string[]>();
      for (const file of files)
        byStore.set(file.vectorStoreId, [...(byStore.get(file.vectorStoreId) ?? []), file.fileId]);
      // Store rows before file rows, in one order (see touchStoreVectors).
      for (const storeId of [...byStore.keys()].sort()) await touchStoreVectors(trx, storeId);
      for (const [storeId, fileIds] of byStore) {
        await dropChunks(trx, this.dialect, { storeId, fileIds });
        await trx
          .deleteFrom("vector_store_files")
          .where("vector_store_id", "=", storeId)
          .where("file_id", "in", fileIds)
          .execute();
      }
      if (files.length > 0)
        await trx.insertInto("vector_store_files").values(files.map(vectorStoreFileRow)).execute();
      return true;
    });
  }

  claimExpired(now: number, leaseMs: number, max: number): Promise<StoredVectorStore[]> {
    return this.expiry.claimExpired(now, leaseMs, max);
  }

  purgeExpiredFile(storeId: string): Promise<boolean> {
    return this.expiry.purgeExpiredFile(storeId);
  }

  finishPurge(storeId: string, now: number): Promise<void> {
    return this.expiry.finishPurge(storeId, now);
  }

  async getFile(
    projectId: string,
    storeId: string,
    fileId: string,
  ): Promise<StoredVectorStoreFile | undefined> {
    const row = await this.db
      .selectFrom("vector_store_files")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .executeTakeFirst();
    return row ? toVectorStoreFile(row) : undefined;
  }

  async listFiles(
    projectId: string,
    storeId: string,
    query: VectorStoreFileQuery,
  ): Promise<StoredVectorStoreFile[]> {
    const cursorId = query.after ?? query.before;
    const cursorFile = cursorId === undefined ? undefined : await this.getFile(projectId, storeId, cursorId);
    let base = this.db
      .selectFrom("vector_store_files")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("vector_store_id", "=", storeId);
    if (query.status) base = base.where("status", "=", query.status);
    if (query.batchId) base = base.where("batch_id", "=", query.batchId);
    const cursor = cursorFile ? { createdAt: cursorFile.createdAt, id: cursorFile.fileId } : undefined;
    const { select, finish } = keysetPage(base, ["created_at", "file_id"], pageOf(query, cursor));
    return finish((await select.execute()).map(toVectorStoreFile));
  }

  async filesWithStatus(
    projectId: string,
    storeId: string,
    status: VectorStoreFileStatus,
  ): Promise<StoredVectorStoreFile[]> {
    const rows = await this.db
      .selectFrom("vector_store_files")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("vector_store_id", "=", storeId)
      .where("status", "=", status)
      .execute();
    return rows.map(toVectorStoreFile);
  }

  async updateAttributes(
    projectId: string,
    storeId: string,
    fileId: string,
    attributes: FileAttributes | null,
  ): Promise<StoredVectorStoreFile | undefined> {
    await this.db
      .updateTable("vector_store_files")
      .set({ attributes: attributes === null ? null : JSON.stringify(attributes) })
      .where("project_id", "=", projectId)
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .execute();
    return this.getFile(projectId, storeId, fileId);
  }

  async deleteFile(projectId: string, storeId: string, fileId: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await touchStoreVectors(trx, storeId, projectId);
      const removed = await trx
        .deleteFrom("vector_store_files")
        .where("project_id", "=", projectId)
        .where("vector_store_id", "=", storeId)
        .where("file_id", "=", fileId)
        .executeTakeFirst();
      if (Number(removed.numDeletedRows) !== 1) return false;
      await dropChunks(trx, this.dialect, { storeId, fileIds: [fileId] });
      return true;
    });
  }

  async filePages(projectId: string, storeId: string, fileId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom("vector_store_file_pages")
      .select("text")
      .where("project_id", "=", projectId)
      .where("vector_store_id", "=", storeId)
      .where("file_id", "=", fileId)
      .orderBy("seq")
      .execute();
    return rows.map((r) => r.text);
  }

  async getBatch(projectId: string, storeId: string, batchId: string): Promise<StoredFileBatch | undefined> {
    const row = await this.db
      .selectFrom("vector_store_file_batches")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("vector_store_id", "=", storeId)
      .where("id", "=", batchId)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      id: row.id,
      vectorStoreId: row.vector_store_id,
      projectId: row.project_id,
      createdAt: Number(row.created_at),
      cancelledAt: row.cancelled_at === null ? null : Number(row.cancelled_at),
    };
  }

  async batchCounts(batchId: string): Promise<FileCounts> {
    const rows = await this.db
      .selectFrom("vector_store_files")
      .select((eb) => ["status", eb.fn.countAll<number>().as("n")])
      .where("batch_id", "=", batchId)
      .groupBy("status")
      .execute();
    return countsOf(rows);
  }

  async cancelBatch(projectId: string, storeId: string, batchId: string, now: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const marked = await trx
        .updateTable("vector_store_file_batches")
        .set({ cancelled_at: now })
        .where("project_id", "=", projectId)
        .where("vector_store_id", "=", storeId)
        .where("id", "=", batchId)
        .where("cancelled_at", "is", null)
        .executeTakeFirst();
      if (Number(marked.numUpdatedRows) !== 1) return;
      await touchStoreVectors(trx, storeId);
      const unfinished = await trx
        .updateTable("vector_store_files")
        .set({ status: "cancelled", lease_owner: null, lease_until: null })
        .where("batch_id", "=", batchId)
        .where("vector_store_id", "=", storeId)
        .where("status", "=", "in_progress")
        .returning("file_id")
        .execute();
      await dropChunks(trx, this.dialect, { storeId, fileIds: unfinished.map((r) => r.file_id) });
    });
  }
}
