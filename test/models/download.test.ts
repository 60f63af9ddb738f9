import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DownloadError, downloadModel } from "../../src/models/download.js";
import {
  describeHfSource,
  type HfModelSource,
  hfCachePath,
  hfDownloadUrl,
  parseModelSource,
} from "../../src/models/model-source.js";
import { createProgressReporter, formatDuration } from "../../src/models/progress-bar.js";

const MODEL = randomBytes(3 * 1024 * 1024);
const MODEL_SHA = createHash("sha256").update(MODEL).digest("hex");
const MODEL_PATH = "/owner/repo/resolve/main/model.gguf";
const TOKEN = "hf_test_token";

interface SeenRequest {
  url: string;
  range: string | undefined;
  authorization: string | undefined;
}

/** Serves MODEL honouring `Range: bytes=N-`, as the hub's CDN does. */
function serveModel(req: IncomingMessage, res: ServerResponse, honourRange = true): void {
  const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (!honourRange || !match) {
    res.writeHead(200, { "content-length": MODEL.length });
    res.end(MODEL);
    return;
  }
  const start = Number(match[1]);
  if (start >= MODEL.length) {
    res.writeHead(416, { "content-range": `bytes */${MODEL.length}` });
    res.end();
    return;
  }
  res.writeHead(206, {
    "content-length": MODEL.length - start,
    "content-range": `bytes ${start}-${MODEL.length - 1}/${MODEL.length}`,
  });
  res.end(MODEL.subarray(start));
}

interface TestServer {
  server: Server;
  base: string;
  seen: SeenRequest[];
}

async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<TestServer> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? "", range: req.headers.range, authorization: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}`, seen };
}

async function stopServer(s: TestServer): Promise<void> {
  s.server.closeAllConnections();
  await new Promise<void>((resolve) => s.server.close(() => resolve()));
}

// A second origin standing in for the CDN the hub redirects to.
let cdn: TestServer;
let hub: TestServer;
let flakyCalls = 0;

function redirectTo(location: string): Handler {
  return (_req, res) => {
    res.writeHead(302, { location });
    res.end();
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const hubRoutes: Record<string, Handler> = {
  [MODEL_PATH]: (req, res) => serveModel(req, res),
  "/redirect/model.gguf": redirectTo(MODEL_PATH),
  "/to-cdn/model.gguf": (req, res) => redirectTo(`${cdn.base}/blob/model.gguf`)(req, res),
  "/loop/model.gguf": redirectTo("/loop/model.gguf"),
  "/private/model.gguf": (req, res) => {
    if (req.headers.authorization === `Bearer ${TOKEN}`) {
      serveModel(req, res);
    } else {
      res.writeHead(401);
      res.end("unauthorized");
    }
  },
  "/norange/model.gguf": (req, res) => serveModel(req, res, false),
  "/flaky/model.gguf": (req, res) => {
    flakyCalls++;
    if (flakyCalls > 1) {
      serveModel(req, res);
      return;
    }
    // First attempt: promise the whole file, send half, then drop the connection.
    res.writeHead(200, { "content-length": MODEL.length });
    res.write(MODEL.subarray(0, MODEL.length / 2), () => res.socket?.destroy());
  },
  // Sends 1 KiB and then nothing: exercises the body idle timeout.
  "/stall/model.gguf": (_req, res) => {
    res.writeHead(200, { "content-length": MODEL.length });
    res.write(MODEL.subarray(0, 1024));
  },
  // Never answers: exercises the headers timeout.
  "/silent/model.gguf": () => undefined,
};

function hubHandler(req: IncomingMessage, res: ServerResponse): void {
  const route = hubRoutes[req.url ?? ""];
  if (route) {
    route(req, res);
    return;
  }
  res.writeHead(404);
  res.end("not found");
}

let tmp: string;

beforeAll(async () => {
  cdn = await startServer((req, res) => serveModel(req, res));
  hub = await startServer(hubHandler);
});

afterAll(async () => {
  await stopServer(hub);
  await stopServer(cdn);
});

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "switchboard-dl-"));
  hub.seen.length = 0;
  cdn.seen.length = 0;
  flakyCalls = 0;
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function destFile(): string {
  return path.join(tmp, "nested", "model.gguf");
}

describe("downloadModel", () => {
  it("downloads, verifies and moves the file into place", async () => {
    const dest = destFile();
    const progress: number[] = [];
    const result = await downloadModel({
      url: `${hub.base}${MODEL_PATH}`,
      dest,
      expectedSha256: MODEL_SHA,
      expectedSize: MODEL.length,
      onProgress: (p) => {
        expect(p.total).toBe(MODEL.length);
        progress.push(p.received);
      },
    });
    expect(result).toEqual({ path: dest, bytes: MODEL.length, sha256: MODEL_SHA, resumed: false });
    expect((await readFile(dest)).equals(MODEL)).toBe(true);
    expect(existsSync(`${dest}.partial`)).toBe(false);
    expect(progress.at(-1)).toBe(MODEL.length);
    expect(hub.seen[0]?.range).toBeUndefined();
  });

  it("follows a redirect to another path", async () => {
    const result = await downloadModel({ url: `${hub.base}/redirect/model.gguf`, dest: destFile() });
    expect(result.sha256).toBe(MODEL_SHA);
    expect(hub.seen.map((r) => r.url)).toEqual(["/redirect/model.gguf", MODEL_PATH]);
  });

  it("sends the token to the hub but not to a redirect target on another origin", async () => {
    const result = await downloadModel({
      url: `${hub.base}/to-cdn/model.gguf`,
      dest: destFile(),
      token: TOKEN,
    });
    expect(result.sha256).toBe(MODEL_SHA);
    expect(hub.seen[0]?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(cdn.seen).toHaveLength(1);
    expect(cdn.seen[0]?.authorization).toBeUndefined();
  });

  it("keeps the token on a same-origin redirect", async () => {
    await downloadModel({ url: `${hub.base}/redirect/model.gguf`, dest: destFile(), token: TOKEN });
    expect(hub.seen.map((r) => r.authorization)).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
  });

  it("gives up after maxRedirects", async () => {
    await expect(
      downloadModel({ url: `${hub.base}/loop/model.gguf`, dest: destFile(), maxRedirects: 3 }),
    ).rejects.toThrow(/too many redirects \(more than 3\)/);
    expect(hub.seen).toHaveLength(4);
  });

  it("reports a 404 as a missing model file, naming the source", async () => {
    const err = await downloadModel({
      url: `${hub.base}/owner/repo/resolve/main/missing.gguf`,
      dest: destFile(),
      displayName: "owner/repo/missing.gguf@main",
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).status).toBe(404);
    expect((err as Error).message).toMatch(/model file not found at owner\/repo\/missing\.gguf@main/);
    expect(existsSync(destFile())).toBe(false);
  });

  it("reports 401 with a hint about the token, and succeeds with the token", async () => {
    const url = `${hub.base}/private/model.gguf`;
    await expect(downloadModel({ url, dest: destFile() })).rejects.toThrow(/HTTP 401.*access token/);
    await expect(downloadModel({ url, dest: destFile(), token: "wrong" })).rejects.toThrow(
      /HTTP 401.*token was rejected/,
    );
    const result = await downloadModel({ url, dest: destFile(), token: TOKEN });
    expect(result.sha256).toBe(MODEL_SHA);
  });

  it("restarts from zero when the server ignores Range", async () => {
    const dest = destFile();
    await mkdir(path.dirname(dest), { recursive: true });
    // Garbage that a naive append would keep at the start of the file.
    await writeFile(`${dest}.partial`, randomBytes(1000));
    const result = await downloadModel({
      url: `${hub.base}/norange/model.gguf`,
      dest,
      expectedSha256: MODEL_SHA,
    });
    expect(hub.seen.at(-1)?.range).toBe("bytes=1000-");
    expect(result).toMatchObject({ bytes: MODEL.length, sha256: MODEL_SHA, resumed: false });
    expect((await readFile(dest)).equals(MODEL)).toBe(true);
  });

  it("resumes with a Range request after the connection was cut half way", async () => {
    const dest = destFile();
    const url = `${hub.base}/flaky/model.gguf`;
    await expect(downloadModel({ url, dest, expectedSha256: MODEL_SHA })).rejects.toThrow(
      /interrupted after \d+ bytes.*run again to resume/,
    );
    expect(existsSync(dest)).toBe(false);
    const kept = (await stat(`${dest}.partial`)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(MODEL.length);

    const progress: number[] = [];
    const result = await downloadModel({
      url,
      dest,
      expectedSha256: MODEL_SHA,
      onProgress: (p) => progress.push(p.received),
    });
    expect(hub.seen[1]?.range).toBe(`bytes=${kept}-`);
    expect(result).toEqual({ path: dest, bytes: MODEL.length, sha256: MODEL_SHA, resumed: true });
    expect(progress[0]).toBeGreaterThan(kept); // progress counts the kept bytes too
    expect((await readFile(dest)).equals(MODEL)).toBe(true);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it("verifies a partial file that is already complete (416)", async () => {
    const dest = destFile();
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(`${dest}.partial`, MODEL);
    const result = await downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest, expectedSha256: MODEL_SHA });
    expect(hub.seen.at(-1)?.range).toBe(`bytes=${MODEL.length}-`);
    expect(result).toEqual({ path: dest, bytes: MODEL.length, sha256: MODEL_SHA, resumed: true });
  });

  it("starts over when the partial file is bigger than the server's file (416)", async () => {
    const dest = destFile();
    await mkdir(path.dirname(dest), { recursive: true });
    await writeFile(`${dest}.partial`, Buffer.concat([MODEL, Buffer.from("extra")]));
    const result = await downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest });
    expect(hub.seen.slice(-2).map((r) => r.range)).toEqual([`bytes=${MODEL.length + 5}-`, undefined]);
    expect(result).toMatchObject({ sha256: MODEL_SHA, resumed: false });
  });

  it("deletes the download and leaves no dest on a sha256 mismatch", async () => {
    const dest = destFile();
    await expect(
      downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest, expectedSha256: "0".repeat(64) }),
    ).rejects.toThrow(/sha256 mismatch/);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it("rejects a size that differs from expectedSize", async () => {
    const dest = destFile();
    await expect(
      downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest, expectedSize: MODEL.length + 1 }),
    ).rejects.toThrow(/expected 3145729/);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it("returns an existing dest without any request", async () => {
    const dest = path.join(tmp, "model.gguf");
    await writeFile(dest, MODEL);
    const withSha = await downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest, expectedSha256: MODEL_SHA });
    const withoutSha = await downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest });
    expect(withSha).toEqual({ path: dest, bytes: MODEL.length, sha256: MODEL_SHA, resumed: false });
    expect(withoutSha.sha256).toBe(MODEL_SHA);
    expect(hub.seen).toHaveLength(0);
  });

  it("replaces an existing dest whose sha256 does not match", async () => {
    const dest = path.join(tmp, "model.gguf");
    await writeFile(dest, "stale");
    const result = await downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest, expectedSha256: MODEL_SHA });
    expect(result.sha256).toBe(MODEL_SHA);
    expect(hub.seen).toHaveLength(1);
    expect((await readFile(dest)).equals(MODEL)).toBe(true);
  });

  it("times out waiting for headers", async () => {
    await expect(
      downloadModel({ url: `${hub.base}/silent/model.gguf`, dest: destFile(), headersTimeoutMs: 200 }),
    ).rejects.toThrow(/did not respond within 0\.2s/);
  });

  it("times out when the body stalls, keeping the partial data", async () => {
    const dest = destFile();
    await expect(
      downloadModel({ url: `${hub.base}/stall/model.gguf`, dest, bodyTimeoutMs: 200 }),
    ).rejects.toThrow(/no data received for 0\.2s/);
    expect((await stat(`${dest}.partial`)).size).toBe(1024);
  });

  it("stops on abort and keeps the partial file for a later resume", async () => {
    const dest = destFile();
    const controller = new AbortController();
    await expect(
      downloadModel({
        url: `${hub.base}${MODEL_PATH}`,
        dest,
        signal: controller.signal,
        onProgress: () => controller.abort(),
      }),
    ).rejects.toThrow(/abort/i);
    expect(existsSync(dest)).toBe(false);
    const kept = (await stat(`${dest}.partial`)).size;
    expect(kept).toBeGreaterThan(0);
    const result = await downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest });
    expect(result).toMatchObject({ sha256: MODEL_SHA, resumed: true });
  });

  it("rejects a malformed expectedSha256 before any request", async () => {
    await expect(
      downloadModel({ url: `${hub.base}${MODEL_PATH}`, dest: destFile(), expectedSha256: "abc" }),
    ).rejects.toThrow(/64 hex characters/);
    expect(hub.seen).toHaveLength(0);
  });
});

describe("parseModelSource", () => {
  it("treats anything without hf: as a file path", () => {
    expect(parseModelSource("/models/a.gguf")).toEqual({ kind: "file", path: "/models/a.gguf" });
    expect(parseModelSource("file:./a.gguf")).toEqual({ kind: "file", path: "./a.gguf" });
  });

  it("parses hf sources with and without a revision", () => {
    expect(parseModelSource("hf:Qwen/Qwen2.5-0.5B-GGUF/q4/model-Q4_K_M.gguf")).toEqual({
      kind: "hf",
      owner: "Qwen",
      repo: "Qwen2.5-0.5B-GGUF",
      file: "q4/model-Q4_K_M.gguf",
      revision: "main",
    });
    expect(parseModelSource("hf:o/r/m.gguf@v1.0")).toMatchObject({ file: "m.gguf", revision: "v1.0" });
    expect(parseModelSource("hf:o/r/m.gguf@refs/pr/1")).toMatchObject({ revision: "refs/pr/1" });
  });

  it.each([
    ["", /empty file path/],
    ["hf:", /missing repository owner/],
    ["hf:owner", /missing repository name/],
    ["hf:owner/repo", /missing file path/],
    ["hf:own er/repo/m.gguf", /owner "own er"/],
    ["hf:owner/re:po/m.gguf", /repository name "re:po"/],
    ["hf:../repo/m.gguf", /owner may not be "\.\."/],
    ["hf:owner/./m.gguf", /repository name may not be "\."/],
    ["hf:owner/repo/../m.gguf", /'\.\.' segment/],
    ["hf:owner/repo/a/../../m.gguf", /'\.\.' segment/],
    ["hf:owner/repo/a\\m.gguf", /backslash/],
    ["hf:owner/repo/m\0.gguf", /NUL/],
    ["hf:owner/repo//m.gguf", /empty segment/],
    ["hf:owner/repo/m.bin", /not a \.gguf file/],
    ["hf:owner/repo/m.gguf@", /empty revision/],
    ["hf:owner/repo/m.gguf@bad rev", /revision "bad rev"/],
    ["hf:owner/repo/m.gguf@refs/../x", /revision/],
  ])("rejects %j", (source, message) => {
    expect(() => parseModelSource(source)).toThrow(message);
  });
});

describe("hub URLs and cache paths", () => {
  const src: HfModelSource = {
    kind: "hf",
    owner: "o",
    repo: "r",
    file: "dir/m 1.gguf",
    revision: "refs/pr/1",
  };

  it("builds the resolve URL with each segment encoded", () => {
    expect(hfDownloadUrl("https://huggingface.co/", src)).toBe(
      "https://huggingface.co/o/r/resolve/refs%2Fpr%2F1/dir/m%201.gguf",
    );
    expect(describeHfSource(src)).toBe("o/r/dir/m 1.gguf@refs/pr/1");
  });

  it("places the cache inside dataDir", () => {
    const dataDir = path.join(tmp, "data");
    const parsed = parseModelSource("hf:o/r/sub/m.gguf");
    if (parsed.kind !== "hf") throw new Error("expected hf");
    const cached = hfCachePath(dataDir, parsed);
    expect(cached).toBe(path.join(dataDir, "models", "o", "r", "main", "sub", "m.gguf"));
    expect(path.relative(dataDir, cached).startsWith("..")).toBe(false);
    expect(hfCachePath(dataDir, src)).toBe(
      path.join(dataDir, "models", "o", "r", "refs%2Fpr%2F1", "dir", "m 1.gguf"),
    );
  });

  it("refuses hand-built sources that would escape dataDir", () => {
    const dataDir = path.join(tmp, "data");
    expect(() => hfCachePath(dataDir, { ...src, file: "../../../../../etc/x.gguf" })).toThrow(
      /leave the data directory/,
    );
    expect(() => hfCachePath(dataDir, { ...src, owner: "..", repo: "..", file: "../x.gguf" })).toThrow(
      /leave the data directory/,
    );
  });
});

describe("createProgressReporter", () => {
  function capture(isTTY: boolean): { stream: PassThrough & { isTTY?: boolean }; text: () => string } {
    const stream: PassThrough & { isTTY?: boolean } = new PassThrough();
    if (isTTY) stream.isTTY = true;
    const chunks: string[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c.toString()));
    return { stream, text: () => chunks.join("") };
  }

  it("logs a plain line every 10% when not a TTY", async () => {
    const { stream, text } = capture(false);
    let clock = 0;
    const reporter = createProgressReporter(stream, "model", () => clock);
    for (let i = 0; i <= 100; i++) {
      clock += 10;
      reporter.update({ received: i * 1024 * 1024, total: 100 * 1024 * 1024 });
    }
    reporter.done();
    await new Promise((r) => setImmediate(r));
    const lines = text().trim().split("\n");
    expect(lines).toHaveLength(11);
    expect(lines[0]).toMatch(/^model:\s+10\.0% 10\.0\/100\.0 MB, 100\.0 MB\/s$/);
    expect(lines.at(-1)).toMatch(/^model: done, 100\.0 MB in 1s$/);
    expect(text()).not.toContain("\r");
  });

  it("redraws in place on a TTY at most every 100 ms", async () => {
    const { stream, text } = capture(true);
    let clock = 0;
    const reporter = createProgressReporter(stream, "model", () => clock);
    for (let i = 0; i <= 100; i++) {
      clock += 20;
      reporter.update({ received: i * 1024 * 1024, total: 100 * 1024 * 1024 });
    }
    reporter.done();
    await new Promise((r) => setImmediate(r));
    const draws = text().split("\r").filter(Boolean);
    expect(draws.length).toBeLessThanOrEqual(22);
    expect(draws.at(-1)).toMatch(/100\.0% 100\.0\/100\.0 MB {2}50\.0 MB\/s {2}ETA 0s\s*\n$/);
  });

  it("formats durations", () => {
    expect(formatDuration(5)).toBe("5s");
    expect(formatDuration(125)).toBe("2m05s");
    expect(formatDuration(7260)).toBe("2h01m");
  });
});
