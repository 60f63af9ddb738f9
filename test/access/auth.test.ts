import type { AddressInfo } from "node:net";
import { AuthenticationError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AccessServer,
  type CreatedKey,
  call,
  chat,
  chatBody,
  expectError,
  expectUnauthorized,
  type HttpResult,
  sdkClient,
  sha256,
  startAccessServer,
} from "../helpers/access.js";
import { TINY_MODEL } from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * Auth on every route: with auth on, every route but /health answers 401 with the OpenAI
 * envelope to a missing, wrong, malformed, revoked, expired or archived-project key; keys never
 * show up in bodies or logs; with no admin key and no keys on loopback, auth is off until the
 * first key exists.
 */

interface Route {
  method: string;
  path: string;
  body?: unknown;
}

/** Every route the server has (admin ones against a real project and key), and an unknown one. */
function allRoutes(projectId: string, keyId: string): Route[] {
  const project = `/admin/projects/${projectId}`;
  const key = `${project}/keys/${keyId}`;
  return [
    { method: "GET", path: "/v1/models" },
    { method: "POST", path: "/v1/models", body: {} },
    { method: "GET", path: `/v1/models/${TINY_MODEL}` },
    { method: "POST", path: "/v1/chat/completions", body: chatBody() },
    // Auth comes before the body is parsed: a caller without a key costs no parsing.
    { method: "POST", path: "/v1/chat/completions", body: "{not json" },
    { method: "POST", path: "/v1/completions", body: { model: TINY_MODEL, prompt: "Hi", max_tokens: 2 } },
    { method: "POST", path: "/v1/chat/completions/input_tokens", body: chatBody() },
    { method: "POST", path: "/tokenize", body: { model: TINY_MODEL, content: "Hi" } },
    { method: "POST", path: "/detokenize", body: { model: TINY_MODEL, tokens: [5] } },
    { method: "GET", path: "/ready" },
    { method: "GET", path: "/metrics" },
    { method: "GET", path: "/admin/projects" },
    { method: "POST", path: "/admin/projects", body: { name: "intruder" } },
    { method: "GET", path: project },
    { method: "PATCH", path: project, body: { name: "renamed" } },
    { method: "GET", path: `${project}/keys` },
    { method: "POST", path: `${project}/keys`, body: { name: "intruder", role: "admin" } },
    { method: "GET", path: key },
    { method: "PATCH", path: key, body: { name: "renamed" } },
    { method: "GET", path: "/admin/usage?group_by=project" },
    { method: "GET", path: "/no/such/route" },
    { method: "DELETE", path: "/v1/chat/completions" },
    // Last: they revoke the key and archive the project.
    { method: "DELETE", path: key },
    { method: "DELETE", path: project },
  ];
}

describe("auth on every route (bootstrap admin key configured)", () => {
  let t: AccessServer;
  /** A throwaway project and key the admin routes are aimed at. */
  let target: { projectId: string; keyId: string };
  let member: CreatedKey;
  let revoked: CreatedKey;
  let archived: CreatedKey;
  let expiring: CreatedKey & { expiresAtMs: number };
  /** Every response body and header block this suite saw, except key-creation responses. */
  const seen: string[] = [];
  const record = (res: HttpResult) => {
    seen.push(`${res.status} ${JSON.stringify([...res.headers])} ${res.text}`);
    return res;
  };

  beforeAll(async () => {
    t = await startAccessServer();
    const { project, key } = await t.admin.projectWithKey();
    target = { projectId: project.id, keyId: key.id };
    member = (await t.admin.projectWithKey()).key;

    revoked = (await t.admin.projectWithKey()).key;
    await t.admin.revokeKey(revoked.project_id, revoked.id);

    const doomed = await t.admin.projectWithKey();
    archived = doomed.key;
    await t.admin.archiveProject(doomed.project.id);
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("keeps /health public, with or without a key", async () => {
    for (const options of [{}, { key: "sk-sb-wrong" }, { authorization: "Basic xyz" }]) {
      const res = record(await call(t.url, "GET", "/health", options));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: "ok" });
    }
  });

  it("accepts a valid key on the API and the bootstrap admin key everywhere", async () => {
    const models = record(await call(t.url, "GET", "/v1/models", { key: member.secret }));
    expect(models.status).toBe(200);
    const completion = record(await chat(t.url, member.secret));
    expect(completion.status, completion.text).toBe(200);
    // Azure-style clients send the key in `api-key`.
    const viaApiKey = record(
      await call(t.url, "GET", "/v1/models", { headers: { "api-key": member.secret } }),
    );
    expect(viaApiKey.status).toBe(200);
    for (const path of ["/ready", "/metrics", "/admin/projects", "/admin/usage"]) {
      const res = record(await call(t.url, "GET", path, { key: t.adminKey }));
      expect(res.status, `${path}: ${res.text}`).toBe(200);
    }
  });

  it("stops honouring a key once its expires_at passes, even while the key is cached", async () => {
    // expires_at is in whole seconds: 1.5–2.5 s from now.
    const expiresAt = Math.ceil((Date.now() + 1_500) / 1000);
    const created = await t.admin.createKey(member.project_id, { expires_at: expiresAt });
    expiring = { ...created, expiresAtMs: expiresAt * 1000 };
    // Used (and so cached, for auth_cache_ttl_ms = 5 s by default) before it expires.
    const before = record(await call(t.url, "GET", "/v1/models", { key: expiring.secret }));
    expect(before.status).toBe(200);
    expect(Date.now()).toBeLessThan(expiring.expiresAtMs);
    const refusedAt = await waitFor(
      "the key to expire",
      async () => {
        const res = record(await call(t.url, "GET", "/v1/models", { key: expiring.secret }));
        if (res.status === 200) return undefined;
        expectUnauthorized(res);
        expect(res.body.error.message).toMatch(/expired/);
        return Date.now();
      },
      6_000,
    );
    // Refused within a moment of expiry, not a cache lifetime later.
    expect(refusedAt).toBeGreaterThanOrEqual(expiring.expiresAtMs - 50);
    expect(refusedAt - expiring.expiresAtMs).toBeLessThan(1_000);
  });

  it("answers 401 invalid_api_key on every route but /health to every bad credential", async () => {
    expect(expiring, "the expiry test runs first").toBeDefined();
    await waitFor(
      "the expiring key to expire",
      async () => (await call(t.url, "GET", "/v1/models", { key: expiring.secret })).status === 401,
      6_000,
    );
    const credentials: Record<string, { authorization?: string; headers?: Record<string, string> }> = {
      "no Authorization header": {},
      "a wrong key": { authorization: `Bearer sk-sb-${"x".repeat(48)}` },
      "a wrong bootstrap-looking key": { authorization: `Bearer ${t.adminKey}x` },
      "Basic auth": { authorization: "Basic xyz" },
      "Bearer alone": { authorization: "Bearer" },
      "Bearer and spaces": { authorization: "Bearer    " },
      "two tokens": { authorization: `Bearer ${member.secret} extra` },
      "a wrong api-key header": { headers: { "api-key": "sk-sb-nope" } },
      "a revoked key": { authorization: `Bearer ${revoked.secret}` },
      "an expired key": { authorization: `Bearer ${expiring.secret}` },
      "a key of an archived project": { authorization: `Bearer ${archived.secret}` },
    };
    for (const [label, credential] of Object.entries(credentials)) {
      for (const route of allRoutes(target.projectId, target.keyId)) {
        const res = record(await call(t.url, route.method, route.path, { ...credential, body: route.body }));
        try {
          expectUnauthorized(res);
        } catch (err) {
          throw new Error(`${label}: ${route.method} ${route.path}: ${(err as Error).message}`);
        }
        // Never echo what was presented.
        expect(res.text).not.toContain("sk-sb-");
        expect(res.text).not.toContain(t.adminKey as string);
      }
    }
    // Nothing was changed by all those requests.
    const project = await t.admin.request("GET", `/admin/projects/${target.projectId}`);
    expect(project.body.status).toBe("active");
    const key = await t.admin.request("GET", `/admin/projects/${target.projectId}/keys/${target.keyId}`);
    expect(key.body.revoked_at).toBeNull();
  });

  it("serves every route to the admin key (so the 401s above were not 404s)", async () => {
    const expected: Record<string, number> = {
      "POST /v1/models": 405,
      "POST /admin/projects": 201,
      [`POST /admin/projects/${target.projectId}/keys`]: 201,
      "POST /v1/chat/completions": 200,
      "GET /no/such/route": 404,
      "DELETE /v1/chat/completions": 405,
    };
    for (const route of allRoutes(target.projectId, target.keyId)) {
      if (route.body === "{not json") continue;
      const res = await call(t.url, route.method, route.path, { key: t.adminKey, body: route.body });
      if (!route.path.endsWith("/keys") || route.method !== "POST") record(res);
      else t.admin.secrets.push(res.body.secret);
      expect(res.status, `${route.method} ${route.path}: ${res.text}`).toBe(
        expected[`${route.method} ${route.path}`] ?? 200,
      );
    }
  });

  it("revokes a key at once on the instance that revoked it", async () => {
    const key = await t.admin.createKey(member.project_id);
    const used = record(await call(t.url, "GET", "/v1/models", { key: key.secret }));
    expect(used.status).toBe(200);
    await t.admin.revokeKey(key.project_id, key.id);
    // No waiting: the very next request is refused (the auth cache was dropped).
    const after = record(await call(t.url, "GET", "/v1/models", { key: key.secret }));
    expectUnauthorized(after);
    expect(after.body.error.message).toMatch(/revoked/);
  });

  it("refuses a project's keys at once when the project is archived", async () => {
    const { project, key } = await t.admin.projectWithKey();
    expect(record(await chat(t.url, key.secret)).status).toBe(200);
    await t.admin.archiveProject(project.id);
    const after = record(await chat(t.url, key.secret));
    expectUnauthorized(after);
    expect(after.body.error.message).toMatch(/archived/);
  });

  it("maps a 401 to the SDK's AuthenticationError without echoing the key", async () => {
    const wrong = `sk-sb-${"q".repeat(48)}`;
    const err = await sdkClient(t.url, wrong)
      .models.list()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as AuthenticationError).status).toBe(401);
    expect((err as AuthenticationError).code).toBe("invalid_api_key");
    expect(JSON.stringify((err as AuthenticationError).error)).not.toContain(wrong);
  });

  it("never shows a key or its hash in a response or a log line", async () => {
    const secrets = [...t.admin.secrets, t.adminKey as string];
    expect(secrets.length).toBeGreaterThan(5);
    const logs = t.logs.join("");
    expect(logs.length).toBeGreaterThan(0);
    const bodies = seen.join("\n");
    for (const secret of secrets) {
      const hash = sha256(secret);
      expect(logs).not.toContain(secret);
      expect(logs).not.toContain(hash);
      expect(bodies).not.toContain(secret);
      expect(bodies).not.toContain(hash);
    }
    // The list and get of keys show only a hint.
    const list = await t.admin.request("GET", `/admin/projects/${member.project_id}/keys`);
    for (const secret of secrets) {
      expect(list.text).not.toContain(secret);
      expect(list.text).not.toContain(sha256(secret));
    }
  });
});

describe("auth off on loopback with no admin key and no keys", () => {
  let t: AccessServer;

  beforeAll(async () => {
    t = await startAccessServer({ adminKey: null });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("serves requests without a key and ignores whatever key an SDK sends", async () => {
    expect((await call(t.url, "GET", "/v1/models")).status).toBe(200);
    expect((await chat(t.url, undefined)).status).toBe(200);
    const completion = await sdkClient(t.url, "sk-anything-at-all").chat.completions.create({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 2,
    });
    expect(completion.choices).toHaveLength(1);
  });

  it("turns auth on as soon as the first key is created", async () => {
    // The admin API stays closed while auth is off; the first key comes from the CLI, which
    // writes to the database directly (the same service call as here).
    expectError(
      await call(t.url, "POST", "/admin/projects/proj_default/keys", { body: { name: "x" } }),
      403,
      {
        code: "admin_key_required",
      },
    );
    const { secret } = await t.server.access.admin.createKey("proj_default", { name: "ops", role: "admin" });
    const created = { secret };
    expect(created.secret).toMatch(/^sk-sb-/);

    expectUnauthorized(await call(t.url, "GET", "/v1/models"));
    expectUnauthorized(await chat(t.url, undefined));
    expectUnauthorized(await call(t.url, "GET", "/admin/projects"));
    const err = await sdkClient(t.url, "sk-anything-at-all")
      .models.list()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);

    expect((await call(t.url, "GET", "/v1/models", { key: created.secret })).status).toBe(200);
    expect((await call(t.url, "GET", "/admin/projects", { key: created.secret })).status).toBe(200);
    expect((await call(t.url, "GET", "/health")).status).toBe(200);
  });
});

describe("auth on beyond loopback even with no keys", () => {
  let t: AccessServer;

  beforeAll(async () => {
    t = await startAccessServer({ adminKey: null, config: { host: "0.0.0.0" } });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("refuses keyless requests when listening on every interface", async () => {
    const { port } = t.server.app.fastify.server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}`;
    expectUnauthorized(await call(url, "GET", "/v1/models"));
    expectUnauthorized(await call(url, "POST", "/admin/projects/proj_default/keys", { body: { name: "x" } }));
    expect((await call(url, "GET", "/health")).status).toBe(200);
  });
});
