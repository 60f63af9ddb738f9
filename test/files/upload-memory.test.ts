import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../helpers/test-server.js";

const MB = 1024 * 1024;

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
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
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
    const growth = peak - before;
    // Buffered whole, the file alone would add 64 MB (and more in copies).
    expect(growth, `rss grew by ${(growth / MB).toFixed(1)} MB`).toBeLessThan(32 * MB);
    const content = await fetch(`${server.url}/v1/files/${body.id}/content`);
    let read = 0;
    for await (const piece of content.body as unknown as AsyncIterable<Uint8Array>) read += piece.byteLength;
    expect(read).toBe(size);
  });
});
