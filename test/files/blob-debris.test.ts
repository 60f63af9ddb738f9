import { mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toFile } from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_PROJECT_ID } from "../../src/auth/principal.js";
import { objectIds } from "../../src/core/ids.js";
import { FilesystemBlobStore } from "../../src/storage/blobs/filesystem-blob-store.js";
import { serverDatabases } from "../helpers/shared-database.js";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const databases = await serverDatabases();
const HOUR = 3_600_000;

async function* bytes(text: string): AsyncIterable<Uint8Array> {
  yield Buffer.from(text);
}

/** Every file in a filesystem blob store (its two-character directories). */
function storedNames(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) => readdirSync(join(dir, d.name)));
}

describe("the filesystem blob store's leftovers", () => {
  it("removes temporary files last written before the cut-off, and lists old blobs to match against their references", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-blobs-"));
    const store = new FilesystemBlobStore(dir);
    const kept = objectIds.blob();
    await store.put(kept, bytes("whole"), { maxBytes: 100 });
    mkdirSync(join(dir, "ab"), { recursive: true });
    const stale = join(dir, "ab", `${objectIds.blob()}.tmp-0123456789ab`);
    const live = join(dir, "ab", `${objectIds.blob()}.tmp-ba9876543210`);
    writeFileSync(stale, "cut short");
    writeFileSync(live, "still being written");
    const twoHoursAgo = new Date(Date.now() - 2 * HOUR);
    utimesSync(stale, twoHoursAgo, twoHoursAgo);
    // Names that are not ours are never touched.
    writeFileSync(join(dir, "ab", "notes.txt"), "x");

    expect(await store.removeUnfinished(Date.now() - HOUR)).toBe(1);
    expect(storedNames(dir).sort()).toEqual([kept, live.split("/").at(-1) as string, "notes.txt"].sort());
    const old: string[] = [];
    for await (const key of store.keysWrittenBefore(Date.now() + 1000)) old.push(key);
    expect(old).toEqual([kept]);
    const none: string[] = [];
    for await (const key of store.keysWrittenBefore(Date.now() - HOUR)) none.push(key);
    expect(none).toEqual([]);
  });
});

describe.each(databases)("leftovers of a crash are cleared at start-up on $name", (database) => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.stop()));
    await database.drop();
  });

  it("removes cut-short writes, unreferenced blobs and the parts of ended uploads, and keeps every file", async () => {
    await database.setup();
    const dataDir = mkdtempSync(join(tmpdir(), "sb-debris-"));
    const config = { ...database.config, data_dir: dataDir };
    const first = await startTestServer({ config });
    servers.push(first);
    const content = Buffer.from("kept exactly as uploaded\n");
    const file = await first.client.files.create({
      file: await toFile(content, "kept.txt"),
      purpose: "user_data",
    });
    // An upload that was cancelled (its row says so) by a server that stopped before removing
    // its parts.
    const upload = await first.client.uploads.create({
      filename: "big.bin",
      purpose: "assistants",
      bytes: 10,
      mime_type: "application/octet-stream",
    });
    await first.client.uploads.parts.create(upload.id, { data: await toFile(Buffer.alloc(4, 7), "p") });
    const storage = first.server.access.storage;
    const [part] = await storage.uploads.parts(DEFAULT_PROJECT_ID, upload.id);
    expect(part).toBeDefined();
    expect(await storage.uploads.finish(DEFAULT_PROJECT_ID, upload.id, "cancelled")).toBe(true);

    // What a crash mid-write leaves: in the database, chunks under a key nothing refers to (an
    // hour old, and one still being written by another instance); on the filesystem, a temporary
    // file and a renamed blob whose file row was never written.
    const oldKey = objectIds.blob();
    const freshKey = objectIds.blob();
    const db = storage.database.db;
    const blobs = first.server.files.blobs;
    if (blobs.kind === "database") {
      await db
        .insertInto("blob_chunks")
        .values([
          { blob_key: oldKey, seq: 0, data: Buffer.from("old"), written_at: Date.now() - 2 * HOUR },
          { blob_key: freshKey, seq: 0, data: Buffer.from("fresh"), written_at: Date.now() },
        ])
        .execute();
    }
    await first.stop();
    const filesDir = join(dataDir, "files");
    const temporary = `${freshKey}.tmp-00ff00ff00ff`;
    if (blobs.kind === "filesystem") {
      // Where the store keeps a key: a directory named by its last two characters.
      for (const [key, name, text] of [
        [oldKey, oldKey, "never recorded"],
        [freshKey, temporary, "cut short"],
      ] as const) {
        mkdirSync(join(filesDir, key.slice(-2)), { recursive: true });
        writeFileSync(join(filesDir, key.slice(-2), name), text);
      }
    }

    const second = await startTestServer({ config });
    servers.push(second);
    await second.server.files.startupSweep;

    const download = await second.client.files.content(file.id);
    expect(Buffer.from(await download.arrayBuffer()).equals(content)).toBe(true);
    const after = second.server.access.storage;
    expect(await after.uploads.parts(DEFAULT_PROJECT_ID, upload.id)).toEqual([]);
    const keysLeft = async () => {
      const keys: string[] = [];
      for await (const key of second.server.files.blobs.keysWrittenBefore(Date.now() + 1000)) keys.push(key);
      return keys;
    };
    const left = await keysLeft();
    expect(left).not.toContain(part?.blobKey);
    expect(left).not.toContain(oldKey);
    if (blobs.kind === "filesystem") {
      // This instance is the SQLite database's only user: all of it was an earlier run's.
      expect(storedNames(filesDir)).not.toContain(temporary);
    } else {
      // Another instance may be writing this one: it is too new to be judged.
      expect(left).toContain(freshKey);
    }
  });
});
