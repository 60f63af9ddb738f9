import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm, stat } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import path from "node:path";
import { type Dispatcher, errors, request } from "undici";

export interface DownloadProgress {
  /** Bytes of the file present so far, including bytes kept from an earlier attempt. */
  received: number;
  /** Full file size when the server told us. */
  total?: number;
}

export interface DownloadOptions {
  url: string;
  dest: string;
  /** Hex sha256 of the whole file; verified before the file is moved into place. */
  expectedSha256?: string;
  expectedSize?: number;
  /** Bearer token, sent only to the origin of `url` (never to a redirect target elsewhere, e.g. a CDN). */
  token?: string;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** Name used in error messages, e.g. `owner/repo/file.gguf@main`; defaults to the URL. */
  displayName?: string;
  /** Defaults to 5. */
  maxRedirects?: number;
  /** How long to wait for response headers; defaults to 30 s. */
  headersTimeoutMs?: number;
  /** Longest silence allowed between body chunks; defaults to 60 s. */
  bodyTimeoutMs?: number;
  /** undici dispatcher (proxy agent, test mock); defaults to the global one. */
  dispatcher?: Dispatcher;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** True when bytes from an earlier, interrupted attempt were reused. */
  resumed: boolean;
}

export class DownloadError extends Error {
  override name = "DownloadError";
  constructor(
    message: string,
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const DEFAULT_MAX_REDIRECTS = 5;
const DEFAULT_HEADERS_TIMEOUT_MS = 30_000;
const DEFAULT_BODY_TIMEOUT_MS = 60_000;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const SHA256_RE = /^[0-9a-f]{64}$/i;

/**
 * Downloads `url` to `dest`, resuming a `dest.partial` left by an earlier
 * attempt, verifying size and sha256, and renaming into place only when the
 * whole file checks out, so `dest` never holds a truncated or corrupt model.
 */
export async function downloadModel(opts: DownloadOptions): Promise<DownloadResult> {
  if (opts.expectedSha256 !== undefined && !SHA256_RE.test(opts.expectedSha256)) {
    throw new DownloadError(`expectedSha256 must be 64 hex characters, got "${opts.expectedSha256}"`);
  }
  const existing = await reuseExistingDest(opts);
  if (existing) return existing;

  await mkdir(path.dirname(opts.dest), { recursive: true });
  const partialPath = `${opts.dest}.partial`;
  const first = await attempt(opts, partialPath);
  if (first !== "restart") return first;
  // The partial file did not fit what the server has now; one clean attempt from zero.
  await rm(partialPath, { force: true });
  const second = await attempt(opts, partialPath);
  if (second === "restart") throw new DownloadError(`server kept rejecting downloads of ${label(opts)}`);
  return second;
}

/** One request/response cycle; "restart" asks the caller to drop the partial file and try again. */
async function attempt(opts: DownloadOptions, partialPath: string): Promise<DownloadResult | "restart"> {
  const offset = await partialSize(partialPath, opts.expectedSize);
  // Hash the kept bytes before asking for the rest, so the final digest covers the whole file.
  const hash = offset > 0 ? await hashFile(partialPath) : createHash("sha256");
  const res = await requestFollowingRedirects(opts, offset);

  if (res.statusCode === 416) {
    await res.body.dump();
    const total = parseContentRange(res.headers["content-range"])?.total;
    if (offset === 0) throw statusError(opts, res.statusCode);
    if (total !== undefined && total !== offset) return "restart";
    // The earlier attempt already received every byte; it only lacked verification.
    opts.onProgress?.({ received: offset, total: total ?? offset });
    return finish(opts, partialPath, { hash, bytes: offset, serverTotal: total, resumed: true });
  }

  if (res.statusCode === 206) {
    const range = parseContentRange(res.headers["content-range"]);
    if (range?.start !== offset) {
      await res.body.dump();
      return "restart";
    }
    const bytes = await writeBody(opts, res.body, partialPath, "append", offset, hash, range.total);
    return finish(opts, partialPath, { hash, bytes, serverTotal: range.total, resumed: offset > 0 });
  }

  if (res.statusCode === 200) {
    // Either a fresh download or the server ignored Range: in both cases the body is the whole file.
    const total = parseLength(res.headers["content-length"]);
    const freshHash = createHash("sha256");
    const bytes = await writeBody(opts, res.body, partialPath, "truncate", 0, freshHash, total);
    return finish(opts, partialPath, { hash: freshHash, bytes, serverTotal: total, resumed: false });
  }

  await res.body.dump().catch(() => undefined);
  throw statusError(opts, res.statusCode);
}

/** Returns the existing `dest` when it already satisfies the expectations, without touching the network. */
async function reuseExistingDest(opts: DownloadOptions): Promise<DownloadResult | undefined> {
  const info = await stat(opts.dest).catch(() => undefined);
  if (!info) return undefined;
  if (!info.isFile()) throw new DownloadError(`${opts.dest} exists and is not a regular file`);
  if (opts.expectedSize !== undefined && info.size !== opts.expectedSize) return undefined;
  const sha256 = (await hashFile(opts.dest)).digest("hex");
  if (opts.expectedSha256 !== undefined && sha256 !== opts.expectedSha256.toLowerCase()) return undefined;
  return { path: opts.dest, bytes: info.size, sha256, resumed: false };
}

/** Size of a usable partial file; one larger than the expected size cannot be a prefix, so it is dropped. */
async function partialSize(partialPath: string, expectedSize: number | undefined): Promise<number> {
  const info = await stat(partialPath).catch(() => undefined);
  if (!info?.isFile()) return 0;
  if (expectedSize !== undefined && info.size > expectedSize) {
    await rm(partialPath, { force: true });
    return 0;
  }
  return info.size;
}

async function hashFile(file: string): Promise<Hash> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash;
}

interface FollowedResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData["body"];
}

/**
 * GET with redirects followed by hand, so that the Authorization header can
 * be dropped when the hub hands us off to a CDN on another origin.
 */
async function requestFollowingRedirects(opts: DownloadOptions, offset: number): Promise<FollowedResponse> {
  const maxRedirects = opts.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const origin = new URL(opts.url).origin;
  let url = new URL(opts.url);
  for (let redirects = 0; ; redirects++) {
    const res = await sendGet(opts, url, buildHeaders(opts, url.origin === origin, offset));
    if (!REDIRECT_STATUSES.has(res.statusCode)) return res;
    await res.body.dump().catch(() => undefined);
    const location = headerValue(res.headers.location);
    if (!location)
      throw new DownloadError(
        `HTTP ${res.statusCode} redirect without a Location header from ${url.host}`,
        res.statusCode,
      );
    if (redirects >= maxRedirects) {
      throw new DownloadError(`too many redirects (more than ${maxRedirects}) downloading ${label(opts)}`);
    }
    url = new URL(location, url);
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new DownloadError(`refusing redirect to unsupported URL scheme ${url.protocol}`);
    }
  }
}

function buildHeaders(opts: DownloadOptions, sameOrigin: boolean, offset: number): Record<string, string> {
  // identity: undici's request() does not decompress, and byte ranges must refer to the raw file.
  const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "switchboard" };
  if (offset > 0) headers.range = `bytes=${offset}-`;
  if (opts.token && sameOrigin) headers.authorization = `Bearer ${opts.token}`;
  return headers;
}

async function sendGet(
  opts: DownloadOptions,
  url: URL,
  headers: Record<string, string>,
): Promise<FollowedResponse> {
  try {
    return await request(url, {
      method: "GET",
      headers,
      signal: opts.signal,
      dispatcher: opts.dispatcher,
      headersTimeout: opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS,
      bodyTimeout: opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    if (err instanceof errors.HeadersTimeoutError) {
      const seconds = (opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS) / 1000;
      throw new DownloadError(
        `${url.host} did not respond within ${seconds}s (downloading ${label(opts)})`,
        undefined,
        {
          cause: err,
        },
      );
    }
    throw new DownloadError(
      `request to ${url.host} failed (downloading ${label(opts)}): ${errorMessage(err)}`,
      undefined,
      {
        cause: err,
      },
    );
  }
}

/**
 * Streams the body to the partial file chunk by chunk (never the whole file
 * in memory), updating the hash as it goes, then fsyncs. On a network error
 * the bytes written so far stay on disk so the next call can resume.
 */
async function writeBody(
  opts: DownloadOptions,
  body: AsyncIterable<Buffer>,
  partialPath: string,
  mode: "append" | "truncate",
  offset: number,
  hash: Hash,
  total: number | undefined,
): Promise<number> {
  const handle = await open(partialPath, mode === "append" ? "a" : "w");
  let received = offset;
  try {
    for await (const chunk of body) {
      await writeFully(handle, chunk);
      hash.update(chunk);
      received += chunk.length;
      opts.onProgress?.({ received, total });
    }
    await handle.sync();
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new DownloadError(
      `download of ${label(opts)} interrupted after ${received} bytes (${bodyErrorMessage(opts, err)}); ` +
        `partial data kept in ${partialPath}, run again to resume`,
      undefined,
      { cause: err },
    );
  } finally {
    await handle.close();
  }
  return received;
}

/** FileHandle.write may write fewer bytes than asked; loop until the chunk is on disk. */
async function writeFully(handle: FileHandle, chunk: Buffer): Promise<void> {
  let written = 0;
  while (written < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, written, chunk.length - written);
    written += bytesWritten;
  }
}

function bodyErrorMessage(opts: DownloadOptions, err: unknown): string {
  if (err instanceof errors.BodyTimeoutError) {
    return `no data received for ${(opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS) / 1000}s`;
  }
  return errorMessage(err);
}

interface Received {
  hash: Hash;
  bytes: number;
  serverTotal: number | undefined;
  resumed: boolean;
}

/** Verifies the complete partial file, then moves it into place atomically. */
async function finish(opts: DownloadOptions, partialPath: string, got: Received): Promise<DownloadResult> {
  const sha256 = got.hash.digest("hex");
  const problem = verificationProblem(opts, got, sha256);
  if (problem) {
    // A wrong file cannot be resumed into a right one; start from scratch next time.
    await rm(partialPath, { force: true });
    throw new DownloadError(`download of ${label(opts)} failed verification: ${problem}`);
  }
  await rename(partialPath, opts.dest);
  await syncDirectory(path.dirname(opts.dest));
  return { path: opts.dest, bytes: got.bytes, sha256, resumed: got.resumed };
}

function verificationProblem(opts: DownloadOptions, got: Received, sha256: string): string | undefined {
  if (got.serverTotal !== undefined && got.bytes !== got.serverTotal) {
    return `received ${got.bytes} bytes but the server announced ${got.serverTotal}`;
  }
  if (opts.expectedSize !== undefined && got.bytes !== opts.expectedSize) {
    return `size is ${got.bytes} bytes, expected ${opts.expectedSize}`;
  }
  if (opts.expectedSha256 !== undefined && sha256 !== opts.expectedSha256.toLowerCase()) {
    return `sha256 mismatch: got ${sha256}, expected ${opts.expectedSha256.toLowerCase()}`;
  }
  return undefined;
}

/** Makes the rename durable; best effort because some platforms cannot open directories. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Not fatal: the file itself was already fsynced.
  }
}

function statusError(opts: DownloadOptions, status: number): DownloadError {
  const name = label(opts);
  if (status === 401 || status === 403) {
    const hint = opts.token
      ? "the access token was rejected or has no access to this repository"
      : "the repository may be private or gated; configure a Hugging Face access token";
    return new DownloadError(`access denied (HTTP ${status}) downloading ${name}: ${hint}`, status);
  }
  if (status === 404) return new DownloadError(`model file not found at ${name} (HTTP 404)`, status);
  if (status === 416)
    return new DownloadError(`server rejected the byte range for ${name} (HTTP 416)`, status);
  return new DownloadError(`unexpected HTTP ${status} downloading ${name}`, status);
}

function label(opts: DownloadOptions): string {
  return opts.displayName ?? opts.url;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function parseLength(value: string | string[] | undefined): number | undefined {
  const text = headerValue(value);
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined;
  return Number(text.trim());
}

/** Parses `bytes start-end/total` and `bytes *\/total`; total is undefined when the server sends `*`. */
function parseContentRange(
  value: string | string[] | undefined,
): { start?: number; total?: number } | undefined {
  const text = headerValue(value)?.trim();
  if (!text) return undefined;
  const match = /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(text);
  if (!match) return undefined;
  return {
    start: match[1] === undefined ? undefined : Number(match[1]),
    total: match[2] === "*" || match[2] === undefined ? undefined : Number(match[2]),
  };
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}
