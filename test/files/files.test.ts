import { readdirSync } from "node:fs";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, call, expectError, newAdminKey, startAccessServer } from "../helpers/access.js";
import { postgresQuery, serverDatabases } from "../helpers/shared-database.js";

const databases = await serverDatabases();

function listBlobFiles(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
}

describe.each(databases)("files on $name", (database) => {
  let server: AccessServer;
  let client: OpenAI;
  let other: OpenAI;
  let dataDir: string;

  beforeAll(async () => {
    await database.setup();
    server = await startAccessServer({
      adminKey: newAdminKey(),
      config: { ...database.config, files: { max_bytes: 256 * 1024 } },
    });
    dataDir = server.dataDir;
    const mine = await server.admin.projectWithKey();
    const theirs = await server.admin.projectWithKey();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: mine.key.secret, maxRetries: 0 });
    other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: theirs.key.secret, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
    await database.drop();
  });

  async function blobCount(): Promise<number> {
    if (database.name === "postgres") {
      const schema = (database as unknown as { schema: string }).schema;
      return postgresQuery(async (c) => {
        const res = await c.query(`select count(distinct blob_key)::int as n from ${schema}.blob_chunks`);
        return res.rows[0].n as number;
      });
    }
    return listBlobFiles(join(dataDir, "files")).length;
  }

  it("uploads with the SDK, lists, retrieves and downloads exactly the bytes sent", async () => {
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    const created = await client.files.create({
      file: await toFile(bytes, "data.bin"),
      purpose: "user_data",
    });
    expect(created).toMatchObject({
      object: "file",
      bytes: bytes.length,
      filename: "data.bin",
      purpose: "user_data",
    });
    expect(created.id).toMatch(/^file-/);
    expect(created.expires_at).toBeNull();

    const fetched = await client.files.retrieve(created.id);
    expect(fetched).toEqual(created);
    const content = await client.files.content(created.id);
    expect(Buffer.from(await content.arrayBuffer()).equals(bytes)).toBe(true);

    const list = await client.files.list({ purpose: "user_data" });
    expect(list.data.map((f) => f.id)).toContain(created.id);
  });

  it("serves JSONL with its content type and keeps names as metadata only", async () => {
    const text = '{"a":1}\n{"b":2}\n';
    const created = await client.files.create({
      file: await toFile(Buffer.from(text), "../../etc/passwd.jsonl"),
      purpose: "batch",
      expires_after: { anchor: "created_at", seconds: 3600 },
    });
    // Stored as a name, never a path: the directory part is dropped.
    expect(created.filename).toBe("passwd.jsonl");
    expect(created.expires_at).toBe(created.created_at + 3600);
    const res = await fetch(`${server.url}/v1/files/${created.id}/content`, {
      headers: { authorization: `Bearer ${client.apiKey}` },
    });
    expect(res.headers.get("content-type")).toMatch(/^application\/jsonl/);
    expect(await res.text()).toBe(text);
  });

  it("pages with limit, after and order", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (
          await client.files.create({
            file: await toFile(Buffer.from(`f${i}`), `p${i}.txt`),
            purpose: "evals",
          })
        ).id,
      );
    }
    const first = await client.files.list({ purpose: "evals", limit: 2, order: "asc" });
    expect(first.data.map((f) => f.id)).toEqual(ids.slice(0, 2));
    expect(first.has_more).toBe(true);
    const rest = await client.files.list({
      purpose: "evals",
      limit: 2,
      order: "asc",
      after: ids[1] as string,
    });
    expect(rest.data.map((f) => f.id)).toEqual([ids[2]]);
    const desc = await client.files.list({ purpose: "evals", order: "desc" });
    expect(desc.data.map((f) => f.id)).toEqual([...ids].reverse());
  });

  it("deletes the row and the bytes", async () => {
    const before = await blobCount();
    const created = await client.files.create({
      file: await toFile(Buffer.from("bye"), "bye.txt"),
      purpose: "user_data",
    });
    expect(await blobCount()).toBe(before + 1);
    const deleted = await client.files.delete(created.id);
    expect(deleted).toMatchObject({ id: created.id, object: "file", deleted: true });
    expect(await blobCount()).toBe(before);
    const res = await call(server.url, "GET", `/v1/files/${created.id}`, { key: client.apiKey as string });
    expectError(res, 404, { code: "file_not_found" });
  });

  it("refuses a file over the limit with 413 and keeps no bytes", async () => {
    const before = await blobCount();
    const big = Buffer.alloc(600 * 1024, 7);
    const form = new FormData();
    form.append("purpose", "user_data");
    form.append("file", new Blob([big]), "big.bin");
    const res = await fetch(`${server.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${client.apiKey}` },
      body: form,
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("file_too_large");
    // Without a Content-Length (chunked), the limit is found while streaming.
    const chunked = await fetch(`${server.url}/v1/files`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${client.apiKey}`,
        "content-type": "multipart/form-data; boundary=XyZ",
      },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(
            Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'),
          );
          controller.enqueue(
            Buffer.from(
              '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n',
            ),
          );
          controller.enqueue(big);
          controller.enqueue(Buffer.from("\r\n--XyZ--\r\n"));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(await blobCount()).toBe(before);
  });

  it("refuses empty files, unknown purposes and a missing file with 400, keeping no bytes", async () => {
    const before = await blobCount();
    await expect(
      client.files.create({ file: await toFile(Buffer.alloc(0), "empty.txt"), purpose: "user_data" }),
    ).rejects.toMatchObject({ status: 400, code: "empty_file" });
    await expect(
      client.files.create({
        file: await toFile(Buffer.from("x"), "x.txt"),
        purpose: "batch_output" as never,
      }),
    ).rejects.toMatchObject({ status: 400, param: "purpose" });
    const form = new FormData();
    form.append("purpose", "user_data");
    const res = await fetch(`${server.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${client.apiKey}` },
      body: form,
    });
    expect(res.status).toBe(400);
    expect(await blobCount()).toBe(before);
  });

  it("hides a file from another project (404, absent from lists) and validates ids", async () => {
    const created = await client.files.create({
      file: await toFile(Buffer.from("secret"), "s.txt"),
      purpose: "user_data",
    });
    for (const [method, path] of [
      ["GET", `/v1/files/${created.id}`],
      ["GET", `/v1/files/${created.id}/content`],
      ["DELETE", `/v1/files/${created.id}`],
    ] as const) {
      expectError(await call(server.url, method, path, { key: other.apiKey as string }), 404, {
        code: "file_not_found",
      });
    }
    expect((await other.files.list()).data.map((f) => f.id)).not.toContain(created.id);
    for (const bad of ["file-..%2F..%2Fx", "file-a%00b", `file-${"a".repeat(300)}`, "nonsense"]) {
      const res = await call(server.url, "GET", `/v1/files/${bad}`, { key: client.apiKey as string });
      expect([400, 404]).toContain(res.status);
    }
    expect((await client.files.retrieve(created.id)).id).toBe(created.id);
  });
});
