import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, call, expectError, newAdminKey, startAccessServer } from "../helpers/access.js";
import { chatLine, downloadLines, jsonl, uploadBatchFile, waitForBatch } from "../helpers/batches.js";
import { serverDatabases } from "../helpers/shared-database.js";

const databases = await serverDatabases();

describe.each(databases)("batches on $name", (database) => {
  let server: AccessServer;
  let client: OpenAI;
  let other: OpenAI;
  /** The server's clock runs this far ahead of the wall clock (the expiry test moves it). */
  let skewMs = 0;

  beforeAll(async () => {
    await database.setup();
    server = await startAccessServer({
      adminKey: newAdminKey(),
      config: { ...database.config, batches: { poll_interval_ms: 50, concurrency: 2, lease_ms: 5_000 } },
      now: () => Date.now() + skewMs,
    });
    const mine = await server.admin.projectWithKey();
    const theirs = await server.admin.projectWithKey();
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: mine.key.secret, maxRetries: 0 });
    other = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: theirs.key.secret, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.stop();
    await database.drop();
  });

  it("runs a batch end to end with the SDK: every custom_id answered once, in OpenAI's line format", async () => {
    const ids = ["a", "b", "c", "d", "e"];
    const inputFileId = await uploadBatchFile(client, jsonl(ids.map((id) => chatLine(id))));
    const created = await client.batches.create({
      input_file_id: inputFileId,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { run: "sdk" },
    });
    expect(created).toMatchObject({
      object: "batch",
      endpoint: "/v1/chat/completions",
      metadata: { run: "sdk" },
    });
    expect(["validating", "in_progress"]).toContain(created.status);
    const done = await waitForBatch(client, created.id);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 5, completed: 5, failed: 0 });
    for (const at of ["in_progress_at", "finalizing_at", "completed_at"] as const)
      expect(done[at]).toBeGreaterThan(0);
    expect(done.error_file_id).toBeNull();
    const output = await downloadLines(client, done.output_file_id);
    expect(output.map((l) => l.custom_id).sort()).toEqual(ids);
    for (const line of output) {
      expect(line.id).toMatch(/^batch_req_/);
      expect(line.error).toBeNull();
      expect(line.response.status_code).toBe(200);
      expect(line.response.request_id).toMatch(/\S/);
      expect(line.response.body.object).toBe("chat.completion");
    }
    const outFile = await client.files.retrieve(done.output_file_id as string);
    expect(outFile.purpose).toBe("batch_output");
    const list = await client.batches.list({ limit: 10 });
    expect(list.data.map((b) => b.id)).toContain(created.id);
  });

  it("fails a batch whose file has malformed lines, duplicate ids, another endpoint or bad bodies, naming the lines", async () => {
    const text = jsonl([
      chatLine("ok"),
      "{not json",
      chatLine("ok"),
      { ...chatLine("other"), url: "/v1/embeddings" },
      chatLine("hot", 4, { temperature: 9 }),
      {
        ...chatLine("nomodel"),
        body: { model: "no-such-model", messages: [{ role: "user", content: "x" }] },
      },
    ]);
    const batch = await client.batches.create({
      input_file_id: await uploadBatchFile(client, text),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    expect(batch.status).toBe("failed");
    expect(batch.failed_at).toBeGreaterThan(0);
    const errors = batch.errors?.data ?? [];
    const byLine = Object.fromEntries(errors.map((e) => [e.line, e]));
    expect(byLine[2]?.code).toBe("invalid_json_line");
    expect(byLine[3]?.code).toBe("duplicate_custom_id");
    expect(byLine[4]?.code).toBe("mismatched_endpoint");
    expect(byLine[5]?.param).toBe("body.temperature");
    expect(byLine[6]?.code).toBe("model_not_found");
    expect(errors.some((e) => e.line === 1)).toBe(false);
  });

  it("refuses an unknown input file, a non-batch file and another endpoint with clear errors", async () => {
    await expect(
      client.batches.create({
        input_file_id: "file-nope",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toMatchObject({ status: 404 });
    const { id } = await client.files.create({
      file: new File([jsonl([chatLine("x")])], "x.jsonl"),
      purpose: "user_data",
    });
    await expect(
      client.batches.create({
        input_file_id: id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toMatchObject({ status: 400, param: "input_file_id" });
    const res = await call(server.url, "POST", "/v1/batches", {
      key: client.apiKey as string,
      body: { input_file_id: id, endpoint: "/v1/responses", completion_window: "24h" },
    });
    expectError(res, 400, { param: "endpoint" });
  });

  it("cancels mid-run: cancelling → cancelled, one line per input line across output and error files", async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const batch = await client.batches.create({
      input_file_id: await uploadBatchFile(client, jsonl(ids.map((id) => chatLine(id, 48)))),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const deadline = Date.now() + 60_000;
    while (
      (await client.batches.retrieve(batch.id)).request_counts?.completed === 0 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const cancelling = await client.batches.cancel(batch.id);
    expect(["cancelling", "cancelled"]).toContain(cancelling.status);
    expect(cancelling.cancelling_at).toBeGreaterThan(0);
    const done = await waitForBatch(client, batch.id);
    expect(done.status).toBe("cancelled");
    expect(done.cancelled_at).toBeGreaterThan(0);
    const lines = [
      ...(await downloadLines(client, done.output_file_id)),
      ...(await downloadLines(client, done.error_file_id)),
    ];
    expect(lines.map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    expect(lines.some((l) => l.error?.code === "batch_cancelled")).toBe(true);
    expect(done.request_counts?.completed).toBeGreaterThan(0);
    expect((done.request_counts?.completed ?? 0) + (done.request_counts?.failed ?? 0)).toBe(ids.length);
  });

  it("expires a batch whose window passes (injected clock), keeping the partial output", async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `x${i}`);
    const batch = await client.batches.create({
      input_file_id: await uploadBatchFile(client, jsonl(ids.map((id) => chatLine(id, 48)))),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const deadline = Date.now() + 60_000;
    while (
      (await client.batches.retrieve(batch.id)).request_counts?.completed === 0 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    skewMs = 25 * 3600_000;
    try {
      const done = await waitForBatch(client, batch.id);
      expect(done.status).toBe("expired");
      expect(done.expired_at).toBeGreaterThan(0);
      const output = await downloadLines(client, done.output_file_id);
      const errors = await downloadLines(client, done.error_file_id);
      expect(output.length).toBeGreaterThan(0);
      expect(errors.some((l) => l.error?.code === "batch_expired")).toBe(true);
      expect([...output, ...errors].map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    } finally {
      skewMs = 0;
    }
  });

  it("hides batches from other projects", async () => {
    const batch = await client.batches.create({
      input_file_id: await uploadBatchFile(client, jsonl([chatLine("p")])),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    for (const [method, path] of [
      ["GET", `/v1/batches/${batch.id}`],
      ["POST", `/v1/batches/${batch.id}/cancel`],
    ] as const) {
      expectError(await call(server.url, method, path, { key: other.apiKey as string }), 404, {
        code: "batch_not_found",
      });
    }
    expect((await other.batches.list()).data.map((b) => b.id)).not.toContain(batch.id);
    await expect(
      other.batches.create({
        input_file_id: batch.input_file_id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toMatchObject({ status: 404 });
    await waitForBatch(client, batch.id);
  });
});
