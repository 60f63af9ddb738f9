import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, describe, expect, inject, it } from "vitest";
import { chatLine, downloadLines, jsonl, uploadBatchFile, waitForBatch } from "../helpers/batches.js";
import { type CliServer, startCliServer } from "../helpers/cli-server.js";
import { compiledCli } from "../helpers/compiled-cli.js";
import { hasPostgres } from "../helpers/databases.js";
import { postgresQuery, postgresServerDatabase } from "../helpers/shared-database.js";
import { startTestServer, TEST_ENGINE, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

function clientFor(url: string): OpenAI {
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: "none", maxRetries: 2 });
}

function expectEachOnce(lines: { custom_id: string }[], ids: readonly string[]): void {
  const counts = new Map<string, number>();
  for (const line of lines) counts.set(line.custom_id, (counts.get(line.custom_id) ?? 0) + 1);
  expect([...counts.keys()].sort()).toEqual([...ids].sort());
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
}

describe("a batch survives kill -9 of its server", () => {
  const dir = mkdtempSync(join(tmpdir(), "sb-batch-crash-"));
  const running: CliServer[] = [];
  afterAll(async () => {
    await Promise.allSettled(running.map((s) => s.stop()));
  });

  it("resumes after a restart with every custom_id answered exactly once", async () => {
    const main = await compiledCli();
    const config = join(dir, "switchboard.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        port: 0,
        demo_model: false,
        data_dir: join(dir, "data"),
        batches: { concurrency: 2, lease_ms: 1500, poll_interval_ms: 50 },
        models: [
          {
            id: TINY_MODEL,
            source: inject("tinyModelPath"),
            context_size: 512,
            parallel: 2,
            threads: 1,
            gpu_layers: 0,
            engine: TEST_ENGINE,
          },
        ],
      }),
    );
    const first = await startCliServer(main, ["--config", config], dir);
    running.push(first);
    const ids = Array.from({ length: 30 }, (_, i) => `k${i}`);
    let client = clientFor(first.url);
    const batch = await client.batches.create({
      input_file_id: await uploadBatchFile(client, jsonl(ids.map((id) => chatLine(id, 24)))),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const deadline = Date.now() + 60_000;
    while (
      ((await client.batches.retrieve(batch.id)).request_counts?.completed ?? 0) < 5 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const before = await client.batches.retrieve(batch.id);
    expect(before.status).toBe("in_progress");
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));

    const second = await startCliServer(main, ["--config", config], dir);
    running.push(second);
    client = clientFor(second.url);
    const done = await waitForBatch(client, batch.id);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: ids.length, completed: ids.length, failed: 0 });
    const output = await downloadLines(client, done.output_file_id);
    expect(done.error_file_id).toBeNull();
    expectEachOnce(output, ids);
  }, 180_000);
});

describe.skipIf(!(await hasPostgres()))("two instances sharing Postgres", () => {
  const database = postgresServerDatabase();
  const servers: TestServer[] = [];
  afterAll(async () => {
    await Promise.allSettled(servers.map((s) => s.stop()));
    await database.drop();
  });

  it("split one batch between them with no line answered twice", async () => {
    await database.setup();
    const config = { ...database.config, batches: { concurrency: 2, lease_ms: 5000, poll_interval_ms: 30 } };
    // One after the other: the first applies the migrations.
    servers.push(await startTestServer({ config }));
    servers.push(await startTestServer({ config }));
    const [one, two] = servers as [TestServer, TestServer];
    const ids = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const batch = await one.client.batches.create({
      input_file_id: await uploadBatchFile(one.client, jsonl(ids.map((id) => chatLine(id, 12)))),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // Either instance answers for it, and serves its files (the bytes are in the database).
    const done = await waitForBatch(two.client, batch.id);
    expect(done.status).toBe("completed");
    expectEachOnce(await downloadLines(two.client, done.output_file_id), ids);
    expectEachOnce(await downloadLines(one.client, done.output_file_id), ids);
    const workers = await postgresQuery(async (c) => {
      const res = await c.query(
        `select count(distinct lease_owner)::int as n from ${database.schema}.batch_lines where batch_id = $1`,
        [batch.id],
      );
      return res.rows[0].n as number;
    });
    expect(workers).toBe(2);
  }, 180_000);
});
