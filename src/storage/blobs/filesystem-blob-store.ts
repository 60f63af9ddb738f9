import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  assertBlobKey,
  type BlobLimit,
  type BlobStore,
  type BlobWritten,
  ByteMeter,
  isBlobKey,
} from "./blob-store.js";

/** The name a blob is written under before it is whole: `<key>.tmp-<12 hex digits>`. */
const TEMPORARY = /^[A-Za-z0-9_-]{8,64}\.tmp-[0-9a-f]{12}$/;

/**
 * Blobs as files under one directory: written to a temporary name, fsync'd, renamed into place
 * and the directory fsync'd, so a blob is either whole or absent after a crash (a crash mid-write
 * leaves a temporary file, which removeUnfinished clears).
 */
export class FilesystemBlobStore implements BlobStore {
  readonly kind = "filesystem";

  constructor(private readonly dir: string) {}

  async put(key: string, source: AsyncIterable<Uint8Array>, limit: BlobLimit): Promise<BlobWritten> {
    const { dir, path } = this.locate(key);
    await mkdir(dir, { recursive: true });
    const temporary = `${path}.tmp-${randomBytes(6).toString("hex")}`;
    const handle = await open(temporary, "wx", 0o600);
    const meter = new ByteMeter(limit);
    try {
      for await (const chunk of source) {
        meter.add(chunk);
        await handle.write(chunk);
      }
      await handle.sync();
      await handle.close();
      await rename(temporary, path);
      await syncDirectory(dir);
      return meter.result();
    } catch (err) {
      await handle.close().catch(() => {});
      await rm(temporary, { force: true });
      throw err;
    }
  }

  async *get(key: string): AsyncIterable<Buffer> {
    for await (const chunk of createReadStream(this.locate(key).path, { highWaterMark: 256 * 1024 })) {
      yield chunk as Buffer;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.locate(key).path, { force: true });
  }

  async removeUnfinished(before: number): Promise<number> {
    let removed = 0;
    for await (const entry of this.entries()) {
      if (!TEMPORARY.test(entry.name)) continue;
      const info = await stat(entry.path).catch(() => undefined);
      if (info && info.mtimeMs < before) {
        await rm(entry.path, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async *keysWrittenBefore(before: number): AsyncIterable<string> {
    for await (const entry of this.entries()) {
      if (!isBlobKey(entry.name)) continue;
      const info = await stat(entry.path).catch(() => undefined);
      if (info?.isFile() && info.mtimeMs < before) yield entry.name;
    }
  }

  /** Every file in the store's directories (one level of two-character directories). */
  private async *entries(): AsyncIterable<{ name: string; path: string }> {
    const dirs = await readdir(this.dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [];
      throw err;
    });
    for (const dir of dirs) {
      if (!dir.isDirectory() || !/^[A-Za-z0-9_-]{2}$/.test(dir.name)) continue;
      const path = join(this.dir, dir.name);
      const files = await readdir(path, { withFileTypes: true }).catch(() => []);
      for (const file of files) if (file.isFile()) yield { name: file.name, path: join(path, file.name) };
    }
  }

  private locate(key: string): { dir: string; path: string } {
    assertBlobKey(key);
    // Two levels keep directories small with many files.
    const dir = join(this.dir, key.slice(-2));
    return { dir, path: join(dir, key) };
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
