import { createHash } from "node:crypto";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, call, expectError, newAdminKey, startAccessServer } from "../helpers/access.js";
import { serverDatabases } from "../helpers/shared-database.js";

const databases = await serverDatabases();

describe.each(databases)("uploads on $name", (database) => {
  let server: AccessServer;
  let client: OpenAI;
  let other: OpenAI;

  beforeAll(async () => {
    await database.setup();
    server = await startAccessServer({ adminKey: newAdminKey(), config: database.config });
    const mine = await server.admin.projectWithKey();
    const theirs = await server.admin.projectWithKey();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: mine.key.secret, maxRetries: 0 });
    other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: theirs.key.secret, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
    await database.drop();
  });

  it("joins parts in the order given into a File with the exact bytes (md5 checked)", async () => {
    const pieces = [Buffer.alloc(3000, 1), Buffer.alloc(5000, 2), Buffer.from("tail")];
    const whole = Buffer.concat(pieces);
    const upload = await client.uploads.create({
      filename: "joined.bin",
      purpose: "assistants",
      bytes: whole.length,
      mime_type: "application/octet-stream",
    });
    expect(upload).toMatchObject({ object: "upload", status: "pending", bytes: whole.length, file: null });
    // Added out of order; completion names the order.
    const ids: string[] = [];
    for (const i of [2, 0, 1]) {
      const part = await client.uploads.parts.create(upload.id, {
        data: await toFile(pieces[i] as Buffer, "p"),
      });
      expect(part).toMatchObject({ object: "upload.part", upload_id: upload.id });
      ids[i] = part.id;
    }
    const md5 = createHash("md5").update(whole).digest("hex");
    const done = await client.uploads.complete(upload.id, { part_ids: ids, md5 });
    expect(done.status).toBe("completed");
    expect(done.file).toMatchObject({
      object: "file",
      bytes: whole.length,
      filename: "joined.bin",
      purpose: "assistants",
    });
    const content = await client.files.content(done.file?.id as string);
    expect(Buffer.from(await content.arrayBuffer()).equals(whole)).toBe(true);
    // Completed: no more parts.
    await expect(
      client.uploads.parts.create(upload.id, { data: await toFile(Buffer.from("x"), "p") }),
    ).rejects.toMatchObject({ status: 400 });
  });

  it("refuses a wrong size, a wrong md5 and unknown parts; cancel ends it", async () => {
    const upload = await client.uploads.create({
      filename: "a.txt",
      purpose: "batch",
      bytes: 10,
      mime_type: "text/plain",
    });
    const part = await client.uploads.parts.create(upload.id, {
      data: await toFile(Buffer.from("12345"), "p"),
    });
    await expect(client.uploads.complete(upload.id, { part_ids: [part.id] })).rejects.toMatchObject({
      status: 400,
      code: "bytes_mismatch",
    });
    const second = await client.uploads.parts.create(upload.id, {
      data: await toFile(Buffer.from("67890"), "p"),
    });
    await expect(
      client.uploads.complete(upload.id, { part_ids: [part.id, second.id], md5: "0".repeat(32) }),
    ).rejects.toMatchObject({ status: 400, code: "md5_mismatch" });
    await expect(client.uploads.complete(upload.id, { part_ids: [part.id, part.id] })).rejects.toMatchObject({
      status: 400,
      param: "part_ids[1]",
    });
    const cancelled = await client.uploads.cancel(upload.id);
    expect(cancelled.status).toBe("cancelled");
    await expect(
      client.uploads.complete(upload.id, { part_ids: [part.id, second.id] }),
    ).rejects.toMatchObject({
      status: 400,
    });
  });

  it("refuses an upload bigger than the file limit, and hides uploads from other projects", async () => {
    await expect(
      client.uploads.create({
        filename: "huge",
        purpose: "batch",
        bytes: 10 * 1024 ** 3,
        mime_type: "text/plain",
      }),
    ).rejects.toMatchObject({ status: 413 });
    const upload = await client.uploads.create({
      filename: "m.txt",
      purpose: "batch",
      bytes: 2,
      mime_type: "text/plain",
    });
    for (const path of [`/v1/uploads/${upload.id}/cancel`, `/v1/uploads/${upload.id}/complete`]) {
      const res = await call(server.url, "POST", path, {
        key: other.apiKey as string,
        body: { part_ids: ["part_x"] },
      });
      expectError(res, 404, { code: "upload_not_found" });
    }
    await expect(
      other.uploads.parts.create(upload.id, { data: await toFile(Buffer.from("hi"), "p") }),
    ).rejects.toMatchObject({ status: 404 });
  });
});
