import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const MB = 1024 * 1024;

/**
 * A full garbage collection, on demand. Buffers the server let go of stay counted in
 * `arrayBuffers` until V8 collects them, which it may put off until some 64 MB of them pile up:
 * as much as a file held whole. Measured after a collection, only what is still held counts.
 */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** A multipart body generated as it is sent: the client holds one 1 MiB chunk at a time. */
function streamedForm(boundary: string, fileBytes: number): ReadableStream<Uint8Array> {
  const chunk = Buffer.alloc(MB, 0x61);
  let sent = 0;
  let stage = 0;
  return new ReadableStream({
    pull(controller) {
      if (stage === 0) {
        controller.enqueue(
          Buffer.from(
            `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
          ),
        );
        stage = 1;
      } else if (sent < fileBytes) {
        const n = Math.min(MB, fileBytes - sent);
        controller.enqueue(n === MB ? chunk : chunk.subarray(0, n));
        sent += n;
      } else {
        controller.enqueue(Buffer.from(`\r\n--${boundary}--\r\n`));
        controller.close();
      }
    },
  });
}

describe("streaming uploads", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("stores a 64 MB file with memory growth well under its size", async () => {
    const size = 64 * MB;
    const gc = collector();
    gc();
    // Buffers still held (where a file held whole would sit), sampled after a collection; and the
    // whole process, whose heap may grow by tens of MB under this much traffic: a looser bound.
    const before = process.memoryUsage();
    let peakBuffers = before.arrayBuffers;
    let peak = before.rss;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
      gc();
      peakBuffers = Math.max(peakBuffers, process.memoryUsage().arrayBuffers);
    }, 50);
    const res = await fetch(`${server.url}/v1/files`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=bnd42" },
      body: streamedForm("bnd42", size),
      duplex: "half",
    } as RequestInit);
    clearInterval(sampler);
    const body = (await res.json()) as { bytes: number; id: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.bytes).toBe(size);
    // Buffered whole, the file alone would add 64 MB (and more in copies); streamed, a few chunks.
    const buffers = peakBuffers - before.arrayBuffers;
    expect(buffers, `buffers grew by ${(buffers / MB).toFixed(1)} MB`).toBeLessThan(32 * MB);
    const growth = peak - before.rss;
    expect(growth, `rss grew by ${(growth / MB).toFixed(1)} MB`).toBeLessThan(size);
    const content = await fetch(`${server.url}/v1/files/${body.id}/content`);
    let read = 0;
    for await (const piece of content.body as unknown as AsyncIterable<Uint8Array>) read += piece.byteLength;
    expect(read).toBe(size);
  });
});
