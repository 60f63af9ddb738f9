import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { assertBlobKey, type BlobLimit, type BlobStore, type BlobWritten, ByteMeter } from "./blob-store.js";

/**
 * Blobs as files under one directory: written to a temporary name, fsync'd, renamed into place
 * and the directory fsync'd, so a blob is either whole or absent after a crash.
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
