import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AccessServer,
  type CreatedKey,
  call,
  chat,
  expectError,
  startAccessServer,
  type WireJson,
} from "../helpers/access.js";
import { TINY_ALIAS, TINY_MODEL } from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * The admin API: only admin keys reach it; projects and keys are created, listed, read, updated,
 * archived and revoked; secrets are shown once; bad input is a 400 naming the field; unknown ids
 * are 404s; usage reports add up what chat requests used — and each project's usage stays its own.
 */

const today = () => new Date().toISOString().slice(0, 10);

describe("the admin API", () => {
  let t: AccessServer;
  let member: CreatedKey;

  beforeAll(async () => {
    t = await startAccessServer();
    member = (await t.admin.projectWithKey()).key;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("refuses member keys with 403 on every admin route, before reading the body", async () => {
    const p = `/admin/projects/${member.project_id}`;
    const routes: [string, string, unknown?][] = [
      ["GET", "/admin/projects"],
      ["POST", "/admin/projects", { name: "mine now" }],
      // A member's malformed body is not parsed at all: 403, not 400.
      ["POST", "/admin/projects", "{not json"],
      ["GET", p],
      ["PATCH", p, { limits: { requests_per_minute: null } }],
      ["DELETE", p],
      ["GET", `${p}/keys`],
      ["POST", `${p}/keys`, { name: "escalate", role: "admin" }],
      ["GET", `${p}/keys/${member.id}`],
      ["PATCH", `${p}/keys/${member.id}`, { limits: { requests_per_minute: null } }],
      ["DELETE", `${p}/keys/${member.id}`],
      ["GET", "/admin/usage"],
      ["GET", "/admin/usage?group_by=project,key"],
      ["GET", "/admin/models"],
    ];
    for (const [method, path, body] of routes) {
      const res = await call(t.url, method, path, { key: member.secret, body });
      try {
        expectError(res, 403, { code: "admin_key_required", type: "permission_error" });
      } catch (err) {
        throw new Error(`${method} ${path}: ${(err as Error).message}`);
      }
    }
    // The member's own key still works (nothing above changed it).
    expect((await chat(t.url, member.secret)).status).toBe(200);
  });

  it("lets an admin key created through the API manage projects too", async () => {
    const adminKey = await t.admin.createKey(member.project_id, { role: "admin" });
    expect(adminKey.role).toBe("admin");
    const res = await call(t.url, "GET", "/admin/projects", { key: adminKey.secret });
    expect(res.status).toBe(200);
    expect(res.body.data.map((p: { id: string }) => p.id)).toContain(member.project_id);
  });

  it("creates, lists, reads, updates and archives projects", async () => {
    const created = await t.admin.createProject("  Team Blue  ", { requests_per_minute: 10 });
    expect(created).toMatchObject({
      object: "project",
      name: "Team Blue",
      status: "active",
      archived_at: null,
      limits: {
        requests_per_minute: 10,
        tokens_per_minute: null,
        max_concurrent: null,
        monthly_token_budget: null,
        monthly_cost_budget_usd: null,
      },
    });
    expect(created.id).toMatch(/^proj_[A-Za-z0-9]+$/);
    expect(Math.abs(created.created_at - Date.now() / 1000)).toBeLessThan(60);

    const listed = await t.admin.request("GET", "/admin/projects");
    expect(listed.status).toBe(200);
    expect(listed.body.object).toBe("list");
    const ids = listed.body.data.map((p: { id: string }) => p.id);
    expect(ids).toContain(created.id);
    expect(ids).toContain("proj_default");

    const got = await t.admin.request("GET", `/admin/projects/${created.id}`);
    expect(got.body).toEqual(created);

    const patched = await t.admin.request("PATCH", `/admin/projects/${created.id}`, {
      name: "Team Green",
      limits: { tokens_per_minute: 5000, max_concurrent: 2 },
    });
    expect(patched.status, patched.text).toBe(200);
    // Limits not named in the patch stay as they were.
    expect(patched.body).toMatchObject({
      name: "Team Green",
      limits: { requests_per_minute: 10, tokens_per_minute: 5000, max_concurrent: 2 },
    });
    const cleared = await t.admin.request("PATCH", `/admin/projects/${created.id}`, {
      limits: { requests_per_minute: null },
    });
    expect(cleared.body.limits).toMatchObject({ requests_per_minute: null, tokens_per_minute: 5000 });

    const archived = await t.admin.request("DELETE", `/admin/projects/${created.id}`);
    expect(archived.status).toBe(200);
    expect(archived.body.status).toBe("archived");
    expect(typeof archived.body.archived_at).toBe("number");
    // Archiving again changes nothing.
    const again = await t.admin.request("DELETE", `/admin/projects/${created.id}`);
    expect(again.body.archived_at).toBe(archived.body.archived_at);

    const active = await t.admin.request("GET", "/admin/projects");
    expect(active.body.data.map((p: { id: string }) => p.id)).not.toContain(created.id);
    const all = await t.admin.request("GET", "/admin/projects?include_archived=true");
    expect(all.body.data.map((p: { id: string }) => p.id)).toContain(created.id);
    expect((await t.admin.request("GET", `/admin/projects/${created.id}`)).body.status).toBe("archived");

    const keyOnArchived = await t.admin.request("POST", `/admin/projects/${created.id}/keys`, { name: "k" });
    expectError(keyOnArchived, 400, { param: "project_id" });
  });

  it("creates keys whose secret is shown once, then lists, reads, updates and revokes them", async () => {
    const project = await t.admin.createProject("keys");
    const expiresAt = Math.floor(Date.now() / 1000) + 3600;
    const res = await t.admin.request("POST", `/admin/projects/${project.id}/keys`, {
      name: "ci",
      allowed_models: [TINY_MODEL],
      expires_at: expiresAt,
      limits: { requests_per_minute: 30 },
    });
    expect(res.status, res.text).toBe(201);
    const key = res.body;
    t.admin.secrets.push(key.secret);
    expect(key).toMatchObject({
      object: "api_key",
      project_id: project.id,
      name: "ci",
      role: "member",
      allowed_models: [TINY_MODEL],
      expires_at: expiresAt,
      revoked_at: null,
      last_used_at: null,
      limits: { requests_per_minute: 30, tokens_per_minute: null },
    });
    expect(key.id).toMatch(/^key_[A-Za-z0-9]+$/);
    expect(key.secret).toMatch(/^sk-sb-[A-Za-z0-9]{48}$/);
    expect(key.hint).toBe(`${key.secret.slice(0, 10)}…${key.secret.slice(-4)}`);

    const list = await t.admin.request("GET", `/admin/projects/${project.id}/keys`);
    expect(list.status).toBe(200);
    expect(list.body.data).toHaveLength(1);
    const get = await t.admin.request("GET", `/admin/projects/${project.id}/keys/${key.id}`);
    expect(get.status).toBe(200);
    for (const shown of [list.body.data[0], get.body]) {
      expect(shown).not.toHaveProperty("secret");
      const { secret: _secret, ...rest } = key;
      expect(shown).toEqual(rest);
    }
    expect(list.text).not.toContain(key.secret);
    expect(get.text).not.toContain(key.secret);

    const patched = await t.admin.request("PATCH", `/admin/projects/${project.id}/keys/${key.id}`, {
      name: "ci-2",
      allowed_models: null,
      limits: { tokens_per_minute: 1000 },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({
      name: "ci-2",
      allowed_models: null,
      expires_at: expiresAt,
      limits: { requests_per_minute: 30, tokens_per_minute: 1000 },
    });
    expect(patched.body).not.toHaveProperty("secret");

    expect((await chat(t.url, key.secret)).status).toBe(200);
    const revoked = await t.admin.request("DELETE", `/admin/projects/${project.id}/keys/${key.id}`);
    expect(revoked.status).toBe(200);
    expect(typeof revoked.body.revoked_at).toBe("number");
    expect(revoked.body).not.toHaveProperty("secret");
    expect((await chat(t.url, key.secret)).status).toBe(401);
    // Revoking again keeps the first revocation time.
    const again = await t.admin.request("DELETE", `/admin/projects/${project.id}/keys/${key.id}`);
    expect(again.body.revoked_at).toBe(revoked.body.revoked_at);
  });

  it("answers bad input with 400 naming the field", async () => {
    const p = `/admin/projects/${member.project_id}`;
    const cases: [string, string, unknown, string | null][] = [
      ["POST", "/admin/projects", { name: "" }, "name"],
      ["POST", "/admin/projects", { name: "   " }, "name"],
      ["POST", "/admin/projects", {}, "name"],
      ["POST", "/admin/projects", { name: 7 }, "name"],
      ["POST", "/admin/projects", { name: "x", colour: "red" }, "colour"],
      [
        "POST",
        "/admin/projects",
        { name: "x", limits: { requests_per_minute: -1 } },
        "limits.requests_per_minute",
      ],
      [
        "POST",
        "/admin/projects",
        { name: "x", limits: { tokens_per_minute: 0 } },
        "limits.tokens_per_minute",
      ],
      ["POST", "/admin/projects", { name: "x", limits: { max_concurrent: 1.5 } }, "limits.max_concurrent"],
      [
        "POST",
        "/admin/projects",
        { name: "x", limits: { monthly_token_budget: -5 } },
        "limits.monthly_token_budget",
      ],
      ["POST", "/admin/projects", { name: "x", limits: { rpm: 5 } }, "limits.rpm"],
      ["POST", "/admin/projects", { name: "x".repeat(257) }, "name"],
      ["PATCH", p, { name: "" }, "name"],
      ["PATCH", p, { id: "proj_other" }, "id"],
      ["PATCH", p, { limits: { monthly_cost_budget_usd: -0.01 } }, "limits.monthly_cost_budget_usd"],
      ["POST", `${p}/keys`, { name: "" }, "name"],
      ["POST", `${p}/keys`, { name: "k", role: "owner" }, "role"],
      ["POST", `${p}/keys`, { name: "k", expires_at: Math.floor(Date.now() / 1000) - 60 }, "expires_at"],
      ["POST", `${p}/keys`, { name: "k", expires_at: -1 }, "expires_at"],
      ["POST", `${p}/keys`, { name: "k", allowed_models: "tiny" }, "allowed_models"],
      ["POST", `${p}/keys`, { name: "k", allowed_models: [""] }, "allowed_models[0]"],
      ["POST", `${p}/keys`, { name: "k", project_id: "proj_other" }, "project_id"],
      ["POST", `${p}/keys`, { name: "k", limits: { requests_per_minute: -1 } }, "limits.requests_per_minute"],
      ["PATCH", `${p}/keys/${member.id}`, { role: "admin" }, "role"],
      ["PATCH", `${p}/keys/${member.id}`, { limits: { max_concurrent: 0 } }, "limits.max_concurrent"],
    ];
    for (const [method, path, body, param] of cases) {
      const res = await t.admin.request(method, path, body);
      try {
        expectError(res, 400, { param, type: "invalid_request_error" });
      } catch (err) {
        throw new Error(`${method} ${path} ${JSON.stringify(body)}: ${(err as Error).message}`);
      }
    }
    for (const body of ["{not json", "[]", "null"]) {
      expectError(await t.admin.request("POST", "/admin/projects", body), 400);
    }
    // Nothing above was created or changed.
    const keys = await t.admin.request("GET", `${p}/keys`);
    expect(keys.body.data.map((k: { name: string }) => k.name)).not.toContain("k");
    const self = await t.admin.request("GET", `${p}/keys/${member.id}`);
    expect(self.body).toMatchObject({ role: "member", limits: { max_concurrent: null } });
  });

  it("answers unknown and absurd ids with 404", async () => {
    const p = `/admin/projects/${member.project_id}`;
    const nope = "/admin/projects/proj_doesnotexist";
    const cases: [string, string, unknown?][] = [
      ["GET", nope],
      ["PATCH", nope, { name: "x" }],
      ["PATCH", nope, {}],
      ["DELETE", nope],
      ["GET", `${nope}/keys`],
      ["POST", `${nope}/keys`, { name: "x" }],
      ["GET", `${p}/keys/key_doesnotexist`],
      ["PATCH", `${p}/keys/key_doesnotexist`, { name: "x" }],
      ["DELETE", `${p}/keys/key_doesnotexist`],
      ["GET", "/admin/projects/..%2F..%2Fetc%2Fpasswd"],
      ["GET", "/admin/projects/proj_%00x"],
      ["GET", `/admin/projects/${"p".repeat(500)}`],
      ["GET", `${p}/keys/${"k".repeat(500)}`],
    ];
    for (const [method, path, body] of cases) {
      const res = await t.admin.request(method, path, body);
      try {
        expectError(res, 404);
      } catch (err) {
        throw new Error(`${method} ${path}: ${(err as Error).message}`);
      }
      expect(["project_not_found", "api_key_not_found"]).toContain(res.body.error.code);
    }
  });

  it("reports every model's health: its engine, slots and capabilities", async () => {
    const res = await t.admin.request("GET", "/admin/models");
    expect(res.status).toBe(200);
    const tiny = (res.body.data as WireJson[]).find((m) => m.id === TINY_MODEL);
    expect(tiny).toMatchObject({
      loaded: true,
      serving: true,
      capabilities: { chat: true, tools: true, structuredOutputs: true },
      engine: { state: "ready" },
    });
    expect(typeof tiny.slots).toBe("number");
    expect(JSON.stringify(res.body)).not.toContain(t.adminKey as string);
  });

  it("refuses to archive the default project", async () => {
    const res = await t.admin.request("DELETE", "/admin/projects/proj_default");
    expectError(res, 400, { param: "project_id" });
    expect((await t.admin.request("GET", "/admin/projects/proj_default")).body.status).toBe("active");
  });

  it("reports usage grouped by project, model and day once the recorder has flushed", async () => {
    const { project, key } = await t.admin.projectWithKey();
    let prompt = 0;
    let completion = 0;
    for (const model of [TINY_MODEL, TINY_MODEL, TINY_ALIAS]) {
      const res = await chat(t.url, key.secret, { model, max_tokens: 3 });
      expect(res.status, res.text).toBe(200);
      prompt += res.body.usage.prompt_tokens;
      completion += res.body.usage.completion_tokens;
    }
    const rows = await waitFor(
      "the usage to be recorded",
      async () => {
        const data = await t.admin.usage("group_by=project,model,day");
        const mine = data.filter((r: { project_id: string }) => r.project_id === project.id);
        return mine.length > 0 && mine.reduce((n: number, r: { requests: number }) => n + r.requests, 0) === 3
          ? mine
          : undefined;
      },
      5_000,
      100,
    );
    // Requests by alias are reported under the model's id.
    expect(rows).toEqual([
      {
        project_id: project.id,
        model: TINY_MODEL,
        day: today(),
        requests: 3,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: expect.any(Number),
        total_tokens: prompt + completion,
        cost_usd: 0,
      },
    ]);
    const filtered = await t.admin.usage(`project_id=${project.id}&group_by=key`);
    expect(filtered).toEqual([expect.objectContaining({ key_id: key.id, requests: 3 })]);
    const total = await t.admin.usage(`project_id=${project.id}`);
    expect(total).toEqual([expect.objectContaining({ requests: 3, total_tokens: prompt + completion })]);

    // The key's last use is written with the same flush.
    const got = await t.admin.request("GET", `/admin/projects/${project.id}/keys/${key.id}`);
    expect(typeof got.body.last_used_at).toBe("number");

    for (const [query, param] of [
      ["group_by=project,colour", "group_by"],
      ["group_by=week", "group_by"],
      ["from=2024-13", "from"],
      ["to=yesterday", "to"],
      ["colour=red", "colour"],
    ]) {
      expectError(await t.admin.request("GET", `/admin/usage?${query}`), 400, { param });
    }
  });
});

describe("tenant isolation", () => {
  let t: AccessServer;
  let a: CreatedKey;
  let b: CreatedKey;
  let bIdle: CreatedKey;

  beforeAll(async () => {
    t = await startAccessServer();
    a = (await t.admin.projectWithKey()).key;
    b = (await t.admin.projectWithKey()).key;
    bIdle = await t.admin.createKey(b.project_id);
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("keeps a project's keys out of another project's paths", async () => {
    const underA = `/admin/projects/${a.project_id}/keys/${b.id}`;
    expectError(await t.admin.request("GET", underA), 404, { code: "api_key_not_found" });
    expectError(await t.admin.request("PATCH", underA, { name: "stolen", allowed_models: [] }), 404);
    expectError(await t.admin.request("DELETE", underA), 404);
    const listA = await t.admin.request("GET", `/admin/projects/${a.project_id}/keys`);
    expect(listA.body.data.map((k: { id: string }) => k.id)).toEqual([a.id]);
    // B's key is untouched and still works.
    const bKey = await t.admin.request("GET", `/admin/projects/${b.project_id}/keys/${b.id}`);
    expect(bKey.body).toMatchObject({ name: b.name, revoked_at: null, allowed_models: null });
    expect((await chat(t.url, b.secret)).status).toBe(200);
    // A member key of A cannot reach B's keys or usage at all.
    for (const path of [`/admin/projects/${b.project_id}/keys`, `/admin/usage?project_id=${b.project_id}`]) {
      expectError(await call(t.url, "GET", path, { key: a.secret }), 403);
    }
  });

  it("attributes usage to the project and key that made it", async () => {
    for (let i = 0; i < 2; i++) expect((await chat(t.url, a.secret)).status).toBe(200);
    // B made one request in the test above; one more.
    expect((await chat(t.url, b.secret)).status).toBe(200);
    const rows = await waitFor(
      "the usage to be recorded",
      async () => {
        const data = await t.admin.usage("group_by=project,key");
        const count = (project: string) =>
          data
            .filter((r: { project_id: string }) => r.project_id === project)
            .reduce((n: number, r: { requests: number }) => n + r.requests, 0);
        return count(a.project_id) === 2 && count(b.project_id) === 2 ? data : undefined;
      },
      5_000,
      100,
    );
    const ofA = rows.filter((r: { project_id: string }) => r.project_id === a.project_id);
    const ofB = rows.filter((r: { project_id: string }) => r.project_id === b.project_id);
    expect(ofA).toEqual([expect.objectContaining({ key_id: a.id, requests: 2 })]);
    expect(ofB).toEqual([expect.objectContaining({ key_id: b.id, requests: 2 })]);

    const onlyB = await t.admin.usage(`project_id=${b.project_id}&group_by=project,key,model`);
    expect(onlyB.map((r: { project_id: string; key_id: string }) => [r.project_id, r.key_id])).toEqual([
      [b.project_id, b.id],
    ]);
    // Filtering by A's key within B's project finds nothing.
    expect(await t.admin.usage(`project_id=${b.project_id}&key_id=${a.id}&group_by=key`)).toEqual([]);

    const idle = await t.admin.request("GET", `/admin/projects/${b.project_id}/keys/${bIdle.id}`);
    expect(idle.body.last_used_at).toBeNull();
  });
});
