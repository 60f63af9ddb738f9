import { extname } from "node:path";
import { invalidRequest, notFound } from "../../core/errors.js";
import { isObjectId, objectIds } from "../../core/ids.js";
import type { BlobStore } from "../../storage/blobs/blob-store.js";
import type { FilePurpose, FileRepository, StoredFile } from "../../storage/repositories/types.js";
import type { ListFilesQuery } from "./schema.js";

export interface FileServiceOptions {
  files: FileRepository;
  blobs: BlobStore;
  now: () => number;
  /** Largest file, in bytes. */
  maxBytes: number;
}

export interface NewFile {
  projectId: string;
  filename: string;
  purpose: FilePurpose;
  mimeType: string;
  source: AsyncIterable<Uint8Array>;
  /** Seconds after creation the file is removed; undefined = the purpose's default. */
  expiresAfterSeconds?: number;
  maxBytes?: number;
}

/** Blob keys checked against their references at once by the debris sweep. */
const DEBRIS_PAGE = 100;

/** Batch input and output files expire after 30 days unless asked otherwise, as OpenAI's do. */
const BATCH_DEFAULT_TTL_S = 30 * 24 * 3600;

const MIME_BY_EXTENSION: Readonly<Record<string, string>> = {
  ".jsonl": "application/jsonl",
  ".json": "application/json",
  ".txt": "text/plain",
  ".md": "text/markdown",
  ".csv": "text/csv",
  ".pdf": "application/pdf",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
};

/** The type a download is served with: what the client declared, else one from the name's extension. */
export function contentTypeFor(filename: string, declared: string | undefined): string {
  const clean = declared?.trim().toLowerCase();
  if (clean && clean !== "application/octet-stream" && /^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(clean))
    return clean;
  return MIME_BY_EXTENSION[extname(filename).toLowerCase()] ?? "application/octet-stream";
}

/** A client's file name, kept as metadata only: never a path; control characters and length bounded. */
export function cleanFilename(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const cleaned = name.replace(/[\u0000-\u001f\u007f]/g, "").slice(0, 512);
  return cleaned === "" ? "file" : cleaned;
}

/** Files: bytes in the blob store, metadata in the database, everything scoped to a project. */
export class FileService {
  constructor(private readonly options: FileServiceOptions) {}

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** Streams the bytes to the store, then records the file; nothing is left behind on failure. */
  async create(input: NewFile): Promise<StoredFile> {
    const { blobKey, bytes } = await this.storeBytes(input.source, input.maxBytes);
    return this.record(input, blobKey, bytes);
  }

  /** Streams bytes to the store under a fresh key; the caller records them or calls `discard`. */
  async storeBytes(
    source: AsyncIterable<Uint8Array>,
    maxBytes?: number,
  ): Promise<{ blobKey: string; bytes: number; md5: string }> {
    const blobKey = objectIds.blob();
    const written = await this.options.blobs.put(blobKey, source, {
      maxBytes: maxBytes ?? this.options.maxBytes,
    });
    return { blobKey, ...written };
  }

  discard(blobKey: string): Promise<void> {
    return this.options.blobs.delete(blobKey);
  }

  /** Records a file for stored bytes; on failure (an empty file) the bytes are removed. */
  async record(input: Omit<NewFile, "source">, blobKey: string, bytes: number): Promise<StoredFile> {
    try {
      if (bytes === 0) throw invalidRequest("The file is empty.", "file", "empty_file");
      const file = this.describe(input, blobKey, bytes);
      await this.options.files.create(file);
      return file;
    } catch (err) {
      await this.options.blobs.delete(blobKey);
      throw err;
    }
  }

  /** A file row for bytes already in the store under `blobKey` (uploads assemble theirs first). */
  describe(input: Omit<NewFile, "source">, blobKey: string, bytes: number): StoredFile {
    const createdAt = this.options.now();
    const ttl =
      input.expiresAfterSeconds ?? (input.purpose.startsWith("batch") ? BATCH_DEFAULT_TTL_S : undefined);
    return {
      id: objectIds.file(),
      projectId: input.projectId,
      filename: cleanFilename(input.filename),
      purpose: input.purpose,
      bytes,
      mimeType: contentTypeFor(input.filename, input.mimeType),
      blobKey,
      createdAt,
      expiresAt: ttl === undefined ? null : createdAt + ttl * 1000,
    };
  }

  async get(projectId: string, fileId: string): Promise<StoredFile> {
    const file = isObjectId(fileId, "file-") ? await this.options.files.get(projectId, fileId) : undefined;
    // Expired files are gone, even before the sweeper removes them.
    if (!file || (file.expiresAt !== null && file.expiresAt <= this.options.now()))
      throw fileNotFound(fileId);
    return file;
  }

  async list(projectId: string, query: ListFilesQuery): Promise<StoredFile[]> {
    const now = this.options.now();
    const rows = await this.options.files.list(projectId, {
      purpose: query.purpose,
      limit: query.limit,
      after: query.after,
      order: query.order,
    });
    return rows.filter((f) => f.expiresAt === null || f.expiresAt > now);
  }

  async delete(projectId: string, fileId: string): Promise<StoredFile> {
    await this.get(projectId, fileId);
    const removed = await this.options.files.delete(projectId, fileId);
    if (!removed) throw fileNotFound(fileId);
    await this.options.blobs.delete(removed.blobKey);
    return removed;
  }

  content(file: StoredFile): AsyncIterable<Buffer> {
    return this.options.blobs.get(file.blobKey);
  }

  /** Bytes stored with `storeBytes` and not (yet) a file: an upload's parts. */
  blobContent(blobKey: string): AsyncIterable<Buffer> {
    return this.options.blobs.get(blobKey);
  }

  /**
   * Removes what a crash left in the blob store, last written before `before` (unix ms, wall
   * clock): temporary files of writes cut short, and whole blobs no file or upload part refers to
   * (the server stopped between writing bytes and recording them, or between removing a row and
   * its bytes). An old blob never gains a reference (files and parts refer to bytes written just
   * before), so one found unreferenced stays so.
   */
  async sweepDebris(before: number): Promise<{ unfinished: number; orphaned: number }> {
    const { blobs, files } = this.options;
    const unfinished = await blobs.removeUnfinished(before);
    let orphaned = 0;
    let page: string[] = [];
    const removeUnreferenced = async () => {
      const referenced = await files.referencedBlobKeys(page);
      for (const key of page) {
        if (referenced.has(key)) continue;
        await blobs.delete(key);
        orphaned++;
      }
      page = [];
    };
    for await (const key of blobs.keysWrittenBefore(before)) {
      page.push(key);
      if (page.length >= DEBRIS_PAGE) await removeUnreferenced();
    }
    await removeUnreferenced();
    return { unfinished, orphaned };
  }

  /** Removes expired files, bytes first gone with the row; returns how many. */
  async sweepExpired(): Promise<number> {
    let removed = 0;
    for (;;) {
      const expired = await this.options.files.expired(this.options.now(), 100);
      if (expired.length === 0) return removed;
      for (const file of expired) {
        if (await this.options.files.delete(file.projectId, file.id)) {
          await this.options.blobs.delete(file.blobKey);
          removed++;
        }
      }
    }
  }
}

export function fileNotFound(fileId: string) {
  return notFound(`No such File object: ${fileId.slice(0, 80)}`, "file_not_found", "file_id");
}
