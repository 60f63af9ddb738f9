import { invalidRequest, notFound, ServiceError } from "../../core/errors.js";
import { isObjectId, objectIds } from "../../core/ids.js";
import type {
  StoredFile,
  StoredUpload,
  StoredUploadPart,
  UploadRepository,
} from "../../storage/repositories/types.js";
import type { FileService } from "../files/service.js";
import type { CreateUploadRequest } from "./schema.js";

/** A part carries at most 64 MB, as OpenAI's do. */
export const MAX_PART_BYTES = 64 * 1024 * 1024;
/** An upload not completed within an hour expires, its parts removed. */
const UPLOAD_TTL_MS = 3600_000;

/** Large files in parts: create, add parts (each streamed to the blob store), complete into a File, cancel. */
export class UploadService {
  constructor(private readonly deps: { uploads: UploadRepository; files: FileService; now: () => number }) {}

  async create(projectId: string, req: CreateUploadRequest): Promise<StoredUpload> {
    if (req.bytes > this.deps.files.maxBytes) {
      throw new ServiceError(
        "too_large",
        `bytes is over the file size limit of ${this.deps.files.maxBytes}.`,
        {
          param: "bytes",
          code: "file_too_large",
        },
      );
    }
    const createdAt = this.deps.now();
    const upload: StoredUpload = {
      id: objectIds.upload(),
      projectId,
      filename: req.filename,
      purpose: req.purpose,
      bytes: req.bytes,
      mimeType: req.mime_type,
      status: "pending",
      createdAt,
      expiresAt: createdAt + UPLOAD_TTL_MS,
      fileExpiresAfterSeconds: req.expires_after?.seconds ?? null,
      fileId: null,
    };
    await this.deps.uploads.create(upload);
    return upload;
  }

  async get(projectId: string, uploadId: string): Promise<StoredUpload> {
    const upload = isObjectId(uploadId, "upload_")
      ? await this.deps.uploads.get(projectId, uploadId)
      : undefined;
    if (!upload)
      throw notFound(`No such Upload object: ${uploadId.slice(0, 80)}`, "upload_not_found", "upload_id");
    return upload;
  }

  /** Checks the upload can take a part before its bytes are read. */
  async pending(projectId: string, uploadId: string): Promise<StoredUpload> {
    const upload = await this.get(projectId, uploadId);
    if (upload.status === "pending" && upload.expiresAt <= this.deps.now()) {
      await this.expire(upload);
      upload.status = "expired";
    }
    if (upload.status !== "pending") {
      throw invalidRequest(
        `The upload is ${upload.status}; it takes no more parts.`,
        null,
        "upload_not_pending",
      );
    }
    return upload;
  }

  async addPart(upload: StoredUpload, blobKey: string, bytes: number): Promise<StoredUploadPart> {
    const part: StoredUploadPart = {
      id: objectIds.uploadPart(),
      uploadId: upload.id,
      projectId: upload.projectId,
      bytes,
      blobKey,
      createdAt: this.deps.now(),
    };
    await this.deps.uploads.addPart(part);
    return part;
  }

  /** Joins the parts in the order given into one File; the declared size (and md5) must match. */
  async complete(
    projectId: string,
    uploadId: string,
    partIds: readonly string[],
    md5: string | undefined,
  ): Promise<{ upload: StoredUpload; file: StoredFile }> {
    const upload = await this.pending(projectId, uploadId);
    const parts = new Map((await this.deps.uploads.parts(projectId, uploadId)).map((p) => [p.id, p]));
    const ordered: StoredUploadPart[] = [];
    const seen = new Set<string>();
    partIds.forEach((id, i) => {
      const part = parts.get(id);
      if (!part || seen.has(id)) {
        throw invalidRequest(
          `part_ids[${i}] is not a part of this upload, or is listed twice.`,
          `part_ids[${i}]`,
          "invalid_part",
        );
      }
      seen.add(id);
      ordered.push(part);
    });
    const total = ordered.reduce((sum, p) => sum + p.bytes, 0);
    if (total !== upload.bytes) {
      throw invalidRequest(
        `The parts hold ${total} bytes, but the upload was created for ${upload.bytes}.`,
        "part_ids",
        "bytes_mismatch",
      );
    }
    const files = this.deps.files;
    const stored = await files.storeBytes(this.concatenate(ordered), upload.bytes);
    if (md5 !== undefined && stored.md5 !== md5.toLowerCase()) {
      await files.discard(stored.blobKey);
      throw invalidRequest("The md5 of the joined parts does not match md5.", "md5", "md5_mismatch");
    }
    const file = files.describe(
      {
        projectId,
        filename: upload.filename,
        purpose: upload.purpose,
        mimeType: upload.mimeType,
        expiresAfterSeconds: upload.fileExpiresAfterSeconds ?? undefined,
      },
      stored.blobKey,
      stored.bytes,
    );
    if (!(await this.deps.uploads.finish(projectId, uploadId, "completed", file))) {
      await files.discard(stored.blobKey);
      throw invalidRequest(
        "The upload was completed, cancelled or expired meanwhile.",
        null,
        "upload_not_pending",
      );
    }
    await this.removeParts(upload);
    return { upload: { ...upload, status: "completed", fileId: file.id }, file };
  }

  async cancel(projectId: string, uploadId: string): Promise<StoredUpload> {
    const upload = await this.pending(projectId, uploadId);
    if (!(await this.deps.uploads.finish(projectId, uploadId, "cancelled"))) {
      throw invalidRequest(
        "The upload was completed, cancelled or expired meanwhile.",
        null,
        "upload_not_pending",
      );
    }
    await this.removeParts(upload);
    return { ...upload, status: "cancelled" };
  }

  /** Expires pending uploads past their hour, removing their parts' bytes. */
  async sweepExpired(): Promise<number> {
    let expired = 0;
    for (const upload of await this.deps.uploads.expired(this.deps.now(), 100)) {
      if (await this.expire(upload)) expired++;
    }
    return expired;
  }

  /**
   * Removes the parts (bytes and rows) of uploads that were completed, cancelled or expired but
   * kept their parts because the server stopped in between; returns how many uploads.
   */
  async sweepLeftoverParts(): Promise<number> {
    let swept = 0;
    for (;;) {
      const uploads = await this.deps.uploads.finishedWithParts(100);
      if (uploads.length === 0) return swept;
      for (const upload of uploads) await this.removeParts(upload);
      swept += uploads.length;
    }
  }

  private async expire(upload: StoredUpload): Promise<boolean> {
    if (!(await this.deps.uploads.finish(upload.projectId, upload.id, "expired"))) return false;
    await this.removeParts(upload);
    return true;
  }

  private async removeParts(upload: StoredUpload): Promise<void> {
    const parts = await this.deps.uploads.parts(upload.projectId, upload.id);
    for (const part of parts) await this.deps.files.discard(part.blobKey);
    await this.deps.uploads.deleteParts(upload.projectId, upload.id);
  }

  private async *concatenate(parts: readonly StoredUploadPart[]): AsyncIterable<Buffer> {
    for (const part of parts) yield* this.deps.files.blobContent(part.blobKey);
  }
}
