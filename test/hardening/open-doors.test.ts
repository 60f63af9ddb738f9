import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AccessServer,
  call,
  callWithHost,
  chat,
  chatBody,
  expectError,
  expectUnauthorized,
  startAccessServer,
} from "../helpers/access.js";

/**
 * What a stranger can reach on a laptop server (loopback, no keys): not the admin API, not the
 * server under a foreign Host name (DNS rebinding), not the API from another web origin.
 */

const port = (url: string) => new URL(url).port;

describe("the admin API on a server without keys", () => {
  let t: AccessServer;
  beforeAll(async () => {
    t = await startAccessServer({ adminKey: null });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("answers 403 with how to create an admin key, and mints nothing", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/admin/projects"],
      ["GET", "/admin/usage"],
      ["POST", "/admin/projects", { name: "mine" }],
      ["POST", "/admin/projects/proj_default/keys", { name: "takeover", role: "admin" }],
      ["GET", "/admin/projects/proj_default/keys"],
    ];
    for (const [method, path, body] of routes) {
      const res = await call(t.url, method, path, { body });
      expectError(res, 403, { code: "admin_key_required", type: "permission_error" });
      expect(res.body.error.message).toContain("switchboard keys create --admin");
    }
    // No key was created: auth is still off and the owner's requests still pass.
    expect((await chat(t.url, undefined)).status).toBe(200);
    expect(await t.server.access.storage.apiKeys.countActive(Date.now())).toBe(0);
  });
});

describe("the admin API on a server with keys", () => {
  let t: AccessServer;
  beforeAll(async () => {
    t = await startAccessServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("needs a key (401), an admin one (403), and serves an admin key", async () => {
    expectUnauthorized(await call(t.url, "GET", "/admin/projects"));
    const { project, key: member } = await t.admin.projectWithKey();
    const asMember = await call(t.url, "POST", `/admin/projects/${project.id}/keys`, {
      key: member.secret,
      body: { name: "escalate", role: "admin" },
    });
    expectError(asMember, 403, { code: "admin_key_required" });
    expect(asMember.body.error.message).toContain("switchboard keys create --admin");
    // Creating an admin key over HTTP takes an admin key.
    const created = await t.admin.createKey(project.id, { role: "admin" });
    expect(created.role).toBe("admin");
    expect((await call(t.url, "GET", "/admin/usage", { key: created.secret })).status).toBe(200);
  });
});

describe("the Host check while auth is off", () => {
  let t: AccessServer;
  beforeAll(async () => {
    t = await startAccessServer({ adminKey: null, config: { allowed_hosts: ["proxy.internal"] } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("refuses foreign names with the envelope, before reading the body", async () => {
    for (const host of [
      "evil.example",
      "127.0.0.1.nip.io",
      `evil.example:${port(t.url)}`,
      "localhost.evil.example",
    ]) {
      for (const [method, path, body] of [
        ["GET", "/v1/models", undefined],
        ["POST", "/v1/chat/completions", chatBody()],
        // A body it never reads: 403, not 400.
        ["POST", "/v1/chat/completions", "{not json"],
        ["GET", "/metrics", undefined],
      ] as const) {
        const res = await callWithHost(t.url, method, path, host, { body });
        try {
          expectError(res, 403, { code: "host_not_allowed", type: "permission_error" });
        } catch (err) {
          throw new Error(`${host} ${method} ${path}: ${(err as Error).message}`);
        }
      }
    }
  });

  it("serves loopback names and addresses, with or without the port, and listed names", async () => {
    const p = port(t.url);
    for (const host of [
      `localhost:${p}`,
      "localhost",
      `127.0.0.1:${p}`,
      `127.1.2.3:${p}`,
      `[::1]:${p}`,
      "[::1]",
      `LOCALHOST:${p}`,
      `proxy.internal:${p}`,
      "proxy.internal",
    ]) {
      const res = await callWithHost(t.url, "GET", "/v1/models", host);
      expect(res.status, `${host}: ${res.text}`).toBe(200);
    }
    const chatted = await callWithHost(t.url, "POST", "/v1/chat/completions", `[::1]:${p}`, {
      body: chatBody(),
    });
    expect(chatted.status, chatted.text).toBe(200);
  });

  it("leaves /health to anyone", async () => {
    expect((await callWithHost(t.url, "GET", "/health", "evil.example")).status).toBe(200);
  });
});

describe("the Host check once auth is on", () => {
  let t: AccessServer;
  beforeAll(async () => {
    t = await startAccessServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("does not apply: keys are the guard, and a foreign name without a key is 401", async () => {
    const { key } = await t.admin.projectWithKey();
    const res = await callWithHost(t.url, "GET", "/v1/models", "api.example.com", { key: key.secret });
    expect(res.status, res.text).toBe(200);
    expectUnauthorized(await callWithHost(t.url, "GET", "/v1/models", "api.example.com"));
  });
});

describe("browsers from other origins", () => {
  const listed = "http://app.example:3000";
  let withCors: AccessServer;
  let plain: AccessServer;
  beforeAll(async () => {
    withCors = await startAccessServer({ adminKey: null, config: { cors_origins: [listed] } });
    plain = await startAccessServer({ adminKey: null });
  });
  afterAll(async () => {
    await withCors?.stop();
    await plain?.stop();
  });

  const preflight = (url: string, origin: string) =>
    call(url, "OPTIONS", "/v1/chat/completions", {
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers":
          "authorization, content-type, x-stainless-os, openai-project, x-sneaky",
      },
    });

  it("answers a listed origin's preflight with the SDKs' headers", async () => {
    const res = await preflight(withCors.url, listed);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(listed);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").split(/,\s*/);
    expect(allowed).toEqual(
      expect.arrayContaining(["authorization", "content-type", "x-stainless-os", "openai-project"]),
    );
    expect(allowed).not.toContain("x-sneaky");
    expect(res.headers.get("vary")).toMatch(/origin/i);
  });

  it("gives an unlisted origin's preflight a 405 and no CORS headers, and so does the default", async () => {
    for (const [url, origin] of [
      [withCors.url, "http://evil.example"],
      [plain.url, listed],
    ] as const) {
      const res = await preflight(url, origin);
      // The path has no OPTIONS handler of its own: 405, as for any other method it lacks.
      expectError(res, 405, { code: "method_not_allowed" });
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
      expect(res.headers.get("access-control-allow-headers")).toBeNull();
    }
  });

  it("lets a listed origin read responses and their headers, streamed or not", async () => {
    for (const stream of [false, true]) {
      const res = await call(withCors.url, "POST", "/v1/chat/completions", {
        headers: { origin: listed },
        body: chatBody({ stream }),
      });
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(listed);
      const exposed = res.headers.get("access-control-expose-headers") ?? "";
      for (const name of [
        "x-request-id",
        "openai-processing-ms",
        "x-ratelimit-remaining-tokens",
        "retry-after",
      ]) {
        expect(exposed).toContain(name);
      }
      if (stream) expect(res.text).toContain("data: [DONE]");
    }
    const other = await call(withCors.url, "POST", "/v1/chat/completions", {
      headers: { origin: "http://evil.example" },
      body: chatBody(),
    });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("stops bodies a page can send without a preflight before any work", async () => {
    for (const url of [withCors.url, plain.url]) {
      for (const [contentType, code] of [
        // A JSON text sent as text/plain is still not taken for a request.
        ["text/plain", "invalid_body"],
        ["text/plain;charset=UTF-8", "invalid_body"],
        ["application/x-www-form-urlencoded", "invalid_content_type"],
        ["multipart/form-data; boundary=x", "invalid_content_type"],
      ] as const) {
        const res = await call(url, "POST", "/v1/chat/completions", {
          headers: { origin: "http://evil.example", "content-type": contentType },
          body: JSON.stringify(chatBody()),
        });
        expectError(res, 400, { code });
        expect(res.headers.get("access-control-allow-origin")).toBeNull();
      }
    }
  });
});
