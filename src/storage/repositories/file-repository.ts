import type { Kysely, Selectable } from "kysely";
import type { DatabaseSchema, FilesTable } from "../schema.js";
import { keysetPage } from "./keyset-page.js";
import type { FileListQuery, FilePurpose, FileRepository, StoredFile } from "./types.js";

export function toStoredFile(row: Selectable<FilesTable>): StoredFile {
  return {
    id: row.id,
    projectId: row.project_id,
    filename: row.filename,
    purpose: row.purpose as FilePurpose,
    bytes: Number(row.bytes),
    mimeType: row.mime_type,
    blobKey: row.blob_key,
    createdAt: Number(row.created_at),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
  };
}

export function fileRow(file: StoredFile): FilesTable {
  return {
    id: file.id,
    project_id: file.projectId,
    filename: file.filename,
    purpose: file.purpose,
    bytes: file.bytes,
    mime_type: file.mimeType,
    blob_key: file.blobKey,
    created_at: file.createdAt,
    expires_at: file.expiresAt,
  };
}

export class KyselyFileRepository implements FileRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async create(file: StoredFile): Promise<void> {
    await this.db.insertInto("files").values(fileRow(file)).execute();
  }

  async get(projectId: string, fileId: string): Promise<StoredFile | undefined> {
    const row = await this.db
      .selectFrom("files")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", fileId)
      .executeTakeFirst();
    return row ? toStoredFile(row) : undefined;
  }

  async list(projectId: string, query: FileListQuery): Promise<StoredFile[]> {
    let base = this.db.selectFrom("files").selectAll().where("project_id", "=", projectId);
    if (query.purpose !== undefined) base = base.where("purpose", "=", query.purpose);
    const cursor = query.after === undefined ? undefined : await this.get(projectId, query.after);
    // (created_at, id) orders files uniquely, so a page boundary never skips or repeats one.
    const { select } = keysetPage(base, ["created_at", "id"], {
      order: query.order,
      limit: query.limit + 1,
      ...(cursor ? { cursor: { values: [cursor.createdAt, cursor.id] } } : {}),
    });
    return (await select.execute()).map(toStoredFile);
  }

  async delete(projectId: string, fileId: string): Promise<StoredFile | undefined> {
    const row = await this.db
      .deleteFrom("files")
      .where("project_id", "=", projectId)
      .where("id", "=", fileId)
      .returningAll()
      .executeTakeFirst();
    return row ? toStoredFile(row) : undefined;
  }

  async referencedBlobKeys(keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await this.db
      .selectFrom("files")
      .select("blob_key")
      .where("blob_key", "in", keys)
      .union(this.db.selectFrom("upload_parts").select("blob_key").where("blob_key", "in", keys))
      .execute();
    return new Set(rows.map((r) => r.blob_key));
  }

  async expired(now: number, limit: number): Promise<StoredFile[]> {
    const rows = await this.db
      .selectFrom("files")
      .selectAll()
      .where("expires_at", "is not", null)
      .where("expires_at", "<=", now)
      .limit(limit)
      .execute();
    return rows.map(toStoredFile);
  }
}
