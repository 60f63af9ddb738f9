import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatLine, jsonl, uploadBatchFile } from "../helpers/batches.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

describe("batch lines on a local model yield slots to interactive requests", () => {
  let server: TestServer;
  beforeAll(async () => {
    // Two slots, one kept for interactive requests (the default); the worker would run two lines.
    server = await startTestServer({
      config: { batches: { concurrency: 2, poll_interval_ms: 20 } },
      model: { parallel: 2 },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("never hold the slot kept for interactive requests, even with lines waiting for one", async () => {
    const backend = server.server.registry.resolve(TINY_MODEL).backend;
    const ids = Array.from({ length: 6 }, (_, i) => `p${i}`);
    const batch = await server.client.batches.create({
      input_file_id: await uploadBatchFile(server.client, jsonl(ids.map((id) => chatLine(id, 48)))),
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    let batchBusy = 0;
    let batchWaiting = 0;
    let interactive: Promise<unknown> | undefined;
    for (;;) {
      const { status, request_counts } = await server.client.batches.retrieve(batch.id);
      if (status !== "validating" && status !== "in_progress") break;
      const stats = backend.stats();
      if (interactive === undefined) {
        batchBusy = Math.max(batchBusy, stats.busySlots);
        batchWaiting = Math.max(batchWaiting, stats.queued);
        if ((request_counts?.completed ?? 0) >= 1 && stats.busySlots === 1) {
          // A batch line runs and the worker holds a second one waiting: the reserved slot is
          // free, so this request is admitted beside the line, not behind it.
          interactive = server.client.chat.completions.create({
            model: TINY_MODEL,
            messages: [{ role: "user", content: "Hi" }],
            max_tokens: 32,
          });
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(batchBusy).toBe(1);
    expect(batchWaiting).toBeGreaterThanOrEqual(1);
    expect(interactive).toBeDefined();
    expect(await interactive).toMatchObject({ object: "chat.completion" });
    const done = await server.client.batches.retrieve(batch.id);
    expect(done.request_counts).toEqual({ total: ids.length, completed: ids.length, failed: 0 });
  });
});
