import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, call, expectError, newAdminKey, startAccessServer } from "../helpers/access.js";
import {
  chatLine,
  downloadLines,
  jsonl,
  STATUS_ORDER,
  uploadBatchFile,
  waitForBatch,
  watchBatch,
} from "../helpers/batches.js";
import { serverDatabases } from "../helpers/shared-database.js";
import { TINY_MODEL } from "../helpers/test-server.js";

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

  it("runs a batch end to end with the SDK: validating → in_progress → … → completed, every custom_id answered once, in OpenAI's line format", async () => {
    const ids = ["a", "b", "c", "d", "e", "f", "g", "h"];
    const inputFileId = await uploadBatchFile(client, jsonl(ids.map((id) => chatLine(id, 24))));
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
    // The input is checked after create answers: the batch is validating until a worker has.
    expect(created.status).toBe("validating");
    expect(created.in_progress_at).toBeNull();
    expect(created.request_counts).toEqual({ total: 0, completed: 0, failed: 0 });
    const { statuses, batch: done } = await watchBatch(client, created.id);
    const seen = ["validating", ...statuses];
    expect(seen).toContain("in_progress");
    expect(seen.map((s) => STATUS_ORDER.indexOf(s))).toEqual(
      [...seen.map((s) => STATUS_ORDER.indexOf(s))].sort((x, y) => x - y),
    );
    expect(done.status).toBe("completed");
    expect(done.model).toBe(chatLine("a").body.model);
    expect(done.request_counts).toEqual({ total: ids.length, completed: ids.length, failed: 0 });
    for (const at of ["in_progress_at", "finalizing_at", "completed_at"] as const)
      expect(done[at]).toBeGreaterThan(0);
    expect(done.in_progress_at).toBeGreaterThanOrEqual(done.created_at);
    expect(done.finalizing_at).toBeGreaterThanOrEqual(done.in_progress_at as number);
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
    const created = await client.batches.create({
      input_file_id: await uploadBatchFile(client, text),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    expect(created.status).toBe("validating");
    const { statuses, batch } = await watchBatch(client, created.id);
    expect(statuses).not.toContain("in_progress");
    expect(batch.status).toBe("failed");
    expect(batch.failed_at).toBeGreaterThan(0);
    expect(batch.in_progress_at).toBeNull();
    expect(batch.output_file_id).toBeNull();
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
      body: { input_file_id: id, endpoint: "/v1/moderations", completion_window: "24h" },
    });
    expectError(res, 400, { param: "endpoint" });
  });

  it("cancels a batch still validating: cancelled, with no line run", async () => {
    const created = await client.batches.create({
      input_file_id: await uploadBatchFile(client, jsonl([chatLine("v1"), chatLine("v2")])),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const cancelling = await client.batches.cancel(created.id);
    // A worker may have taken it meanwhile; either way it ends cancelled, every line answered once.
    expect(["cancelling", "cancelled"]).toContain(cancelling.status);
    const done = await waitForBatch(client, created.id);
    expect(done.status).toBe("cancelled");
    expect(done.cancelled_at).toBeGreaterThan(0);
    const counts = done.request_counts ?? { total: 0, completed: 0, failed: 0 };
    expect(counts.completed + counts.failed).toBe(counts.total);
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

  it("runs /v1/responses lines as the Responses API answers them, stored as each line says", async () => {
    const line = (customId: string, body: Record<string, unknown>) => ({
      custom_id: customId,
      method: "POST",
      url: "/v1/responses",
      body: { model: TINY_MODEL, max_output_tokens: 16, ...body },
    });
    const created = await client.batches.create({
      input_file_id: await uploadBatchFile(
        client,
        jsonl([
          line("stored", { input: "Say hi" }),
          line("unstored", { input: "Say hi", store: false }),
          line("instructed", {
            instructions: "Answer briefly.",
            input: [{ role: "user", content: "Hello" }],
            metadata: { line: "3" },
          }),
        ]),
      ),
      endpoint: "/v1/responses",
      completion_window: "24h",
    });
    expect(created).toMatchObject({ endpoint: "/v1/responses", status: "validating" });
    const done = await waitForBatch(client, created.id);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    const output = await downloadLines(client, done.output_file_id);
    const byId = Object.fromEntries(output.map((l) => [l.custom_id, l]));
    expect(Object.keys(byId).sort()).toEqual(["instructed", "stored", "unstored"]);
    for (const result of output) {
      expect(result.error).toBeNull();
      expect(result.response.status_code).toBe(200);
      const response = result.response.body;
      expect(response).toMatchObject({ object: "response", model: TINY_MODEL, background: false });
      expect(response.id).toMatch(/^resp_/);
      expect(["completed", "incomplete"]).toContain(response.status);
      expect(response.output.some((item: { type: string }) => item.type === "message")).toBe(true);
      expect(response.usage.output_tokens).toBeGreaterThan(0);
    }
    expect(byId.instructed.response.body).toMatchObject({
      instructions: "Answer briefly.",
      metadata: { line: "3" },
    });
    // store (the default) keeps the response for retrieval and chains; store: false does not.
    const stored = byId.stored.response.body;
    const retrieved = await client.responses.retrieve(stored.id);
    expect(retrieved.id).toBe(stored.id);
    expect(retrieved.output).toEqual(stored.output);
    expect(byId.unstored.response.body.store).toBe(false);
    await expect(client.responses.retrieve(byId.unstored.response.body.id)).rejects.toMatchObject({
      status: 404,
    });
  });

  it("refuses /v1/responses lines that would stream or run in the background, naming the line", async () => {
    const line = (customId: string, body: Record<string, unknown>) => ({
      custom_id: customId,
      method: "POST",
      url: "/v1/responses",
      body: { model: TINY_MODEL, input: "Hi", ...body },
    });
    const created = await client.batches.create({
      input_file_id: await uploadBatchFile(
        client,
        jsonl([
          line("fine", {}),
          line("streamed", { stream: true }),
          line("background", { background: true }),
          line("tokens", { max_output_tokens: 1 }),
        ]),
      ),
      endpoint: "/v1/responses",
      completion_window: "24h",
    });
    const done = await waitForBatch(client, created.id);
    expect(done.status).toBe("failed");
    const byLine = Object.fromEntries((done.errors?.data ?? []).map((e) => [e.line, e]));
    expect(byLine[1]).toBeUndefined();
    expect(byLine[2]?.param).toBe("body.stream");
    expect(byLine[3]?.param).toBe("body.background");
    expect(byLine[4]?.param).toBe("body.max_output_tokens");
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
