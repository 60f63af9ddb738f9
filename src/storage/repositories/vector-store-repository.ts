import type { ExpressionBuilder, SelectQueryBuilder } from "kysely";
import { KyselyVectorIngestion } from "./vector-ingestion-repository.js";
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

type Cursor = { createdAt: number; id: string };

/**
 * Keyset paging over (created_at, id): `after` continues in the chosen order, `before` goes back
 * (read in the other order, then turned around). One more row than `limit` tells has_more.
 */
function paged<DB, T extends keyof DB & string, O>(
  select: SelectQueryBuilder<DB, T, O>,
  idColumn: string,
  query: PageQuery,
  cursor: Cursor | undefined,
): { select: SelectQueryBuilder<DB, T, O>; reverse: boolean } {
  const back = query.before !== undefined;
  const descending = (query.order === "desc") !== back;
  const op = descending ? "<" : ">";
  let out = select;
  if (cursor) {
    // biome-ignore lint/suspicious/noExplicitAny: the two columns exist on every table paged here
    out = out.where((eb: ExpressionBuilder<any, any>) =>
      eb.or([
        eb("created_at", op, cursor.createdAt),
        eb.and([eb("created_at", "=", cursor.createdAt), eb(idColumn, op, cursor.id)]),
      ]),
    ) as typeof out;
  }
  const direction = descending ? "desc" : "asc";
  out = out
    // biome-ignore lint/suspicious/noExplicitAny: as above
    .orderBy("created_at" as any, direction)
    // biome-ignore lint/suspicious/noExplicitAny: as above
    .orderBy(idColumn as any, direction)
    .limit(query.limit + 1) as typeof out;
  return { select: out, reverse: back };
}

function finishPage<T>(rows: T[], limit: number, reverse: boolean): T[] {
  if (!reverse) return rows;
  // Going back, the extra row is the farthest one; the page is read nearest first.
  const page = rows.slice(0, limit).reverse();
  return rows.length > limit ? [...page, rows[limit] as T] : page;
}

export class KyselyVectorStoreRepository extends KyselyVectorIngestion implements VectorStoreRepository {
  async create(store: StoredVectorStore, files: readonly StoredVectorStoreFile[]): Promise<void> {
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
    const { select, reverse } = paged(base, "id", query, cursorStore);
    return finishPage((await select.execute()).map(toVectorStore), query.limit, reverse);
  }

  async update(
    projectId: string,
    id: string,
    patch: Parameters<VectorStoreRepository["update"]>[2],
  ): Promise<StoredVectorStore | undefined> {
    const set: Record<string, unknown> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.metadata !== undefined)
      set.metadata = patch.metadata === null ? null : JSON.stringify(patch.metadata);
    if (patch.expiresAfterDays !== undefined) set.expires_after_days = patch.expiresAfterDays;
    if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt;
    if (patch.lastActiveAt !== undefined) set.last_active_at = patch.lastActiveAt;
    if (Object.keys(set).length > 0) {
      await this.db
        .updateTable("vector_stores")
        .set(set)
        .where("project_id", "=", projectId)
        .where("id", "=", id)
        .execute();
    }
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

  async attachFiles(files: readonly StoredVectorStoreFile[], batch?: StoredFileBatch): Promise<void> {
    if (files.length === 0 && !batch) return;
    await this.db.transaction().execute(async (trx) => {
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
    });
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
    const { select, reverse } = paged(base, "file_id", query, cursor);
    return finishPage((await select.execute()).map(toVectorStoreFile), query.limit, reverse);
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
