import type { Kysely, Selectable } from "kysely";
import type { DatabaseSchema, UploadsTable } from "../schema.js";
import { fileRow } from "./file-repository.js";
import type {
  FilePurpose,
  StoredFile,
  StoredUpload,
  StoredUploadPart,
  UploadRepository,
  UploadStatus,
} from "./types.js";

function toUpload(row: Selectable<UploadsTable>): StoredUpload {
  return {
    id: row.id,
    projectId: row.project_id,
    filename: row.filename,
    purpose: row.purpose as FilePurpose,
    bytes: Number(row.bytes),
    mimeType: row.mime_type,
    status: row.status,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    fileExpiresAfterSeconds: row.file_expires_after_s,
    fileId: row.file_id,
  };
}

export class KyselyUploadRepository implements UploadRepository {
  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async create(upload: StoredUpload): Promise<void> {
    await this.db
      .insertInto("uploads")
      .values({
        id: upload.id,
        project_id: upload.projectId,
        filename: upload.filename,
        purpose: upload.purpose,
        bytes: upload.bytes,
        mime_type: upload.mimeType,
        status: upload.status,
        created_at: upload.createdAt,
        expires_at: upload.expiresAt,
        file_expires_after_s: upload.fileExpiresAfterSeconds,
        file_id: upload.fileId,
      })
      .execute();
  }

  async get(projectId: string, uploadId: string): Promise<StoredUpload | undefined> {
    const row = await this.db
      .selectFrom("uploads")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("id", "=", uploadId)
      .executeTakeFirst();
    return row ? toUpload(row) : undefined;
  }

  async addPart(part: StoredUploadPart): Promise<void> {
    await this.db
      .insertInto("upload_parts")
      .values({
        id: part.id,
        upload_id: part.uploadId,
        project_id: part.projectId,
        bytes: part.bytes,
        blob_key: part.blobKey,
        created_at: part.createdAt,
      })
      .execute();
  }

  async parts(projectId: string, uploadId: string): Promise<StoredUploadPart[]> {
    const rows = await this.db
      .selectFrom("upload_parts")
      .selectAll()
      .where("project_id", "=", projectId)
      .where("upload_id", "=", uploadId)
      .orderBy("created_at")
      .execute();
    return rows.map((row) => ({
      id: row.id,
      uploadId: row.upload_id,
      projectId: row.project_id,
      bytes: Number(row.bytes),
      blobKey: row.blob_key,
      createdAt: Number(row.created_at),
    }));
  }

  async finish(
    projectId: string,
    uploadId: string,
    status: Exclude<UploadStatus, "pending">,
    file?: StoredFile,
  ): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const updated = await trx
        .updateTable("uploads")
        .set({ status, file_id: file?.id ?? null })
        .where("project_id", "=", projectId)
        .where("id", "=", uploadId)
        .where("status", "=", "pending")
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) return false;
      if (file) await trx.insertInto("files").values(fileRow(file)).execute();
      return true;
    });
  }

  async deleteParts(projectId: string, uploadId: string): Promise<void> {
    await this.db
      .deleteFrom("upload_parts")
      .where("project_id", "=", projectId)
      .where("upload_id", "=", uploadId)
      .execute();
  }

  async finishedWithParts(limit: number): Promise<StoredUpload[]> {
    const rows = await this.db
      .selectFrom("uploads as u")
      .selectAll("u")
      .where("u.status", "<>", "pending")
      .where((eb) =>
        eb.exists(eb.selectFrom("upload_parts as p").select("p.id").whereRef("p.upload_id", "=", "u.id")),
      )
      .limit(limit)
      .execute();
    return rows.map(toUpload);
  }

  async expired(now: number, limit: number): Promise<StoredUpload[]> {
    const rows = await this.db
      .selectFrom("uploads")
      .selectAll()
      .where("status", "=", "pending")
      .where("expires_at", "<=", now)
      .limit(limit)
      .execute();
    return rows.map(toUpload);
  }
}
