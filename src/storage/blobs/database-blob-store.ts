import type { Kysely } from "kysely";
import type { DatabaseSchema } from "../schema.js";
import { assertBlobKey, type BlobLimit, type BlobStore, type BlobWritten, ByteMeter } from "./blob-store.js";

const CHUNK_BYTES = 1024 * 1024;
const KEY_PAGE = 500;

/**
 * Blobs as rows of 1 MiB chunks in the shared database, so every instance serves every file.
 * Chunks are written as they arrive (never the whole blob in memory) and read back one at a time.
 * A blob is referenced only once its file row commits after the last chunk.
 */
export class DatabaseBlobStore implements BlobStore {
  readonly kind = "database";

  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  async put(key: string, source: AsyncIterable<Uint8Array>, limit: BlobLimit): Promise<BlobWritten> {
    assertBlobKey(key);
    const meter = new ByteMeter(limit);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let seq = 0;
    const flush = async () => {
      if (pendingBytes === 0 && seq > 0) return;
      await this.db
        .insertInto("blob_chunks")
        // The wall clock, not a test's: how old a chunk is decides whether the sweeper may take it.
        .values({ blob_key: key, seq, data: Buffer.concat(pending, pendingBytes), written_at: Date.now() })
        .execute();
      seq++;
      pending = [];
      pendingBytes = 0;
    };
    try {
      for await (const chunk of source) {
        meter.add(chunk);
        let rest = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        while (rest.length > 0) {
          const take = Math.min(rest.length, CHUNK_BYTES - pendingBytes);
          pending.push(Buffer.from(rest.subarray(0, take)));
          pendingBytes += take;
          rest = rest.subarray(take);
          if (pendingBytes === CHUNK_BYTES) await flush();
        }
      }
      await flush();
      return meter.result();
    } catch (err) {
      await this.delete(key).catch(() => {});
      throw err;
    }
  }

  async *get(key: string): AsyncIterable<Buffer> {
    assertBlobKey(key);
    for (let seq = 0; ; seq++) {
      const row = await this.db
        .selectFrom("blob_chunks")
        .select("data")
        .where("blob_key", "=", key)
        .where("seq", "=", seq)
        .executeTakeFirst();
      if (!row) return;
      yield Buffer.from(row.data);
    }
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    await this.db.deleteFrom("blob_chunks").where("blob_key", "=", key).execute();
  }

  /** A write cut short leaves chunks under a key nothing refers to: keysWrittenBefore finds those. */
  async removeUnfinished(): Promise<number> {
    return 0;
  }

  async *keysWrittenBefore(before: number): AsyncIterable<string> {
    let after = "";
    for (;;) {
      const rows = await this.db
        .selectFrom("blob_chunks")
        .select("blob_key")
        .where("blob_key", ">", after)
        .groupBy("blob_key")
        .having((eb) => eb(eb.fn.max(eb.fn.coalesce("written_at", eb.lit(0))), "<", before))
        .orderBy("blob_key")
        .limit(KEY_PAGE)
        .execute();
      for (const row of rows) yield row.blob_key;
      if (rows.length < KEY_PAGE) return;
      after = rows[rows.length - 1]?.blob_key ?? after;
    }
  }
}
