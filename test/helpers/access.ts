import { createHash } from "node:crypto";
import http from "node:http";
import OpenAI from "openai";
import { expect } from "vitest";
import { randomId } from "../../src/core/ids.js";
import type { Deployment } from "../../src/router/model-registry.js";
import { startTestServer, type TestServer, TINY_MODEL } from "./test-server.js";

/**
 * Helpers for the keys / projects / limits / usage suite: a server started with a bootstrap
 * admin key, an admin API client that creates projects and keys, raw HTTP calls that keep the
 * status, headers and body.
 */

/** A fresh bootstrap admin key (the config wants at least 20 characters). */
export function newAdminKey(): string {
  return `sb-bootstrap-${randomId(32)}`;
}

export const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

/**
 * A parsed JSON body as tests read it: field access is unchecked on purpose, since the assertions
 * (expectError, toMatchObject, the OpenAPI validator) are what check its shape.
 */
// biome-ignore lint/suspicious/noExplicitAny: response bodies are probed field by field in assertions
export type WireJson = any;

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  body: WireJson;
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <key>`. */
  key?: string;
  /** A raw Authorization header (wins over `key`). */
  authorization?: string;
  /** A JSON body (objects are serialised; strings are sent as they are). */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One HTTP request; the whole body is read. */
export async function call(
  baseUrl: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  else if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await fetch(`${baseUrl}${path}`, { method, headers, body, signal: options.signal });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed };
}

/**
 * One request through node:http, which (unlike fetch) lets a test send any Host header, as a
 * DNS-rebinding page or a proxy would.
 */
export function callWithHost(
  baseUrl: string,
  method: string,
  path: string,
  host: string,
  options: CallOptions = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { ...options.headers, host };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        const responseHeaders = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) responseHeaders.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: responseHeaders, text, body: parsed });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Asserts the OpenAI error envelope with its status (and code/type/param when given). */
export function expectError(
  res: HttpResult,
  status: number,
  expected: { code?: string | null; type?: string; param?: string | null } = {},
): void {
  const where = `${res.status} ${res.text}`;
  expect(res.status, where).toBe(status);
  expect(res.headers.get("content-type"), where).toMatch(/^application\/json/);
  expect(Object.keys(res.body ?? {}), where).toEqual(["error"]);
  const error = res.body.error;
  expect(Object.keys(error).sort(), where).toEqual(["code", "message", "param", "type"]);
  expect(typeof error.message, where).toBe("string");
  expect(error.message, where).not.toMatch(/\n\s+at |\/work\/|node_modules|\.ts:\d+/);
  if (expected.code !== undefined) expect(error.code, where).toBe(expected.code);
  if (expected.type !== undefined) expect(error.type, where).toBe(expected.type);
  if (expected.param !== undefined) expect(error.param, where).toBe(expected.param);
}

export const expectUnauthorized = (res: HttpResult) =>
  expectError(res, 401, { code: "invalid_api_key", type: "invalid_request_error", param: null });

/** A small chat request body for the tiny model. */
export function chatBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: TINY_MODEL,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 2,
    ...overrides,
  };
}

export function chat(baseUrl: string, key: string | undefined, overrides: Record<string, unknown> = {}) {
  return call(baseUrl, "POST", "/v1/chat/completions", { key, body: chatBody(overrides) });
}

/** Total tokens a successful chat response reports. */
export function totalTokens(res: HttpResult): number {
  expect(res.status, res.text).toBe(200);
  return res.body.usage.total_tokens as number;
}

/** An official SDK client for a key; `fetch` may wrap the real one (to count attempts). */
export function sdkClient(
  baseUrl: string,
  key: string,
  options: { maxRetries?: number; fetch?: typeof fetch } = {},
): OpenAI {
  return new OpenAI({
    baseURL: `${baseUrl}/v1`,
    apiKey: key,
    maxRetries: options.maxRetries ?? 0,
    timeout: 30_000,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

export interface CreatedKey {
  id: string;
  project_id: string;
  secret: string;
  role: string;
  [field: string]: WireJson;
}

/** The admin API through raw fetch with an admin key; remembers every secret it was shown. */
export class AdminClient {
  /** Every secret a create response returned (to search logs and bodies for leaks). */
  readonly secrets: string[] = [];

  constructor(
    readonly baseUrl: string,
    readonly key: string | undefined,
  ) {}

  request(method: string, path: string, body?: unknown): Promise<HttpResult> {
    return call(this.baseUrl, method, path, { key: this.key, body });
  }

  async createProject(name: string, limits?: Record<string, unknown>): Promise<WireJson> {
    const res = await this.request("POST", "/admin/projects", limits ? { name, limits } : { name });
    expect(res.status, res.text).toBe(201);
    return res.body;
  }

  async createKey(projectId: string, body: Record<string, unknown> = {}): Promise<CreatedKey> {
    const res = await this.request("POST", `/admin/projects/${projectId}/keys`, {
      name: `key-${randomId(6)}`,
      ...body,
    });
    expect(res.status, res.text).toBe(201);
    this.secrets.push(res.body.secret);
    return res.body as CreatedKey;
  }

  /** A new project with one key (member unless `key.role` says otherwise). */
  async projectWithKey(
    projectLimits?: Record<string, unknown>,
    key: Record<string, unknown> = {},
  ): Promise<{ project: WireJson; key: CreatedKey }> {
    const project = await this.createProject(`project-${randomId(6)}`, projectLimits);
    return { project, key: await this.createKey(project.id, key) };
  }

  async revokeKey(projectId: string, keyId: string): Promise<void> {
    const res = await this.request("DELETE", `/admin/projects/${projectId}/keys/${keyId}`);
    expect(res.status, res.text).toBe(200);
  }

  async archiveProject(projectId: string): Promise<void> {
    const res = await this.request("DELETE", `/admin/projects/${projectId}`);
    expect(res.status, res.text).toBe(200);
  }

  async usage(query: string): Promise<WireJson[]> {
    const res = await this.request("GET", `/admin/usage${query ? `?${query}` : ""}`);
    expect(res.status, res.text).toBe(200);
    return res.body.data;
  }
}

export interface AccessServer extends TestServer {
  /** The bootstrap admin key, when the server has one. */
  adminKey: string | undefined;
  admin: AdminClient;
}

/**
 * A test server with access control: by default a bootstrap admin key (so auth is on);
 * `adminKey: null` starts one without (auth then depends on the host and on existing keys).
 */
export async function startAccessServer(
  options: {
    config?: Record<string, unknown>;
    model?: Record<string, unknown>;
    extraModels?: { id: string; aliases?: string[] }[];
    adminKey?: string | null;
    now?: () => number;
    extraDeployments?: Deployment[];
  } = {},
): Promise<AccessServer> {
  const adminKey = options.adminKey === null ? undefined : (options.adminKey ?? newAdminKey());
  const t = await startTestServer({
    config: { ...(adminKey ? { admin_key: adminKey } : {}), ...options.config },
    model: options.model,
    extraModels: options.extraModels,
    now: options.now,
    extraDeployments: options.extraDeployments,
  });
  return { ...t, adminKey, admin: new AdminClient(t.url, adminKey) };
}
