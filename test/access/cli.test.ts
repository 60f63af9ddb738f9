import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, call, chat, expectUnauthorized, startAccessServer } from "../helpers/access.js";
import { compiledCli, runCli } from "../helpers/compiled-cli.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * `switchboard keys …` works on the database directly: a key it creates works against a server
 * on the same data dir (SQLite), and `keys revoke` makes it fail there.
 */
describe("the keys CLI against a running server", () => {
  let main: string;
  let dir: string;
  let dataDir: string;
  let t: AccessServer;

  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "sb-cli-keys-"));
    dataDir = join(dir, "data");
  });
  afterAll(async () => {
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("creates an admin key that works (saying, and logging, that auth is now on), and revokes it", async () => {
    // A laptop server: no keys yet, so no auth.
    t = await startAccessServer({ adminKey: null, config: { data_dir: dataDir, auth_cache_ttl_ms: 200 } });
    expect((await call(t.url, "GET", "/v1/models")).status).toBe(200);

    const created = await runCli(
      main,
      ["keys", "create", "--admin", "--name", "ops", "--data-dir", dataDir],
      dir,
    );
    expect(created.code, created.stderr).toBe(0);
    const secret = /^secret: (sk-sb-[A-Za-z0-9]{48})$/m.exec(created.stdout)?.[1];
    const keyId = /^created (key_[A-Za-z0-9]+) in proj_default \(admin\)$/m.exec(created.stdout)?.[1];
    expect(secret, created.stdout).toBeDefined();
    expect(keyId, created.stdout).toBeDefined();
    expect(created.stdout).toContain("This is the first API key: auth is now ON");

    // No bootstrap admin key: auth is on because a key exists in the database, and the server
    // says so in its log the moment it notices.
    await waitFor(
      "auth to switch on",
      async () => (await call(t.url, "GET", "/v1/models")).status === 401,
      3_000,
    );
    expectUnauthorized(await call(t.url, "GET", "/v1/models"));
    expect(t.logs.join("")).toContain("AUTH IS NOW ON");
    expect((await call(t.url, "GET", "/v1/models", { key: secret })).status).toBe(200);
    expect((await chat(t.url, secret)).status).toBe(200);
    const keys = await call(t.url, "GET", "/admin/projects/proj_default/keys", { key: secret });
    expect(keys.status).toBe(200);
    expect(keys.body.data).toEqual([expect.objectContaining({ id: keyId, name: "ops", role: "admin" })]);
    expect(keys.text).not.toContain(secret as string);

    // A member key made by the CLI while the server runs works at once (a lookup, not a cache).
    const member = await runCli(main, ["keys", "create", "--data-dir", dataDir, "--rpm", "5"], dir);
    expect(member.code, member.stderr).toBe(0);
    expect(member.stdout).not.toContain("first API key");
    const memberSecret = /^secret: (sk-sb-\S+)$/m.exec(member.stdout)?.[1] as string;
    const memberChat = await chat(t.url, memberSecret);
    expect(memberChat.status).toBe(200);
    expect(memberChat.headers.get("x-ratelimit-limit-requests")).toBe("5");
    expect((await call(t.url, "GET", "/admin/projects", { key: memberSecret })).status).toBe(403);

    const listed = await runCli(main, ["keys", "list", "--data-dir", dataDir], dir);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(`${keyId}\tops\tadmin`);
    expect(listed.stdout).not.toContain(secret as string);

    const revoked = await runCli(main, ["keys", "revoke", keyId as string, "--data-dir", dataDir], dir);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked ${keyId}`);
    // Another process revoked it: the server notices within its auth cache lifetime.
    await waitFor(
      "the revoked key to be refused",
      async () => (await call(t.url, "GET", "/v1/models", { key: secret })).status === 401,
      3_000,
      50,
    );
    expectUnauthorized(await call(t.url, "GET", "/admin/projects", { key: secret }));
    const after = await runCli(main, ["keys", "list", "--data-dir", dataDir], dir);
    expect(after.stdout).toMatch(new RegExp(`${keyId}\\tops\\tadmin\\t\\S+\\trevoked`));
  });

  it("fails clearly on a bad command and never prints a secret then", async () => {
    const [unknownProject, badRpm, noId] = await Promise.all([
      runCli(main, ["keys", "create", "--project", "proj_nope", "--data-dir", dataDir], dir),
      runCli(main, ["keys", "create", "--rpm=0", "--data-dir", dataDir], dir),
      runCli(main, ["keys", "revoke", "--data-dir", dataDir], dir),
    ]);
    expect(unknownProject.code).not.toBe(0);
    expect(unknownProject.stderr).toContain("proj_nope");
    expect(unknownProject.stdout).not.toContain("sk-sb-");
    expect(badRpm.code).not.toBe(0);
    expect(badRpm.stderr).toContain("--rpm must be a positive whole number");
    expect(badRpm.stdout).not.toContain("sk-sb-");
    expect(noId.code).not.toBe(0);
  });
});
