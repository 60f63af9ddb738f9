import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type AccessServer, chat, expectError, startAccessServer } from "../helpers/access.js";
import { compiledCli, runCli } from "../helpers/compiled-cli.js";
import { TINY_ALIAS, TINY_MODEL } from "../helpers/test-server.js";

/**
 * A key's `allowed_models` must name models that exist: a typo would make a key that can use
 * nothing, silently. The admin API checks against the server's model ids and aliases; the CLI,
 * which may run with no server, against the config it loads.
 */
describe("allowed_models names only models that exist", () => {
  let t: AccessServer;

  beforeAll(async () => {
    t = await startAccessServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("refuses an unknown id with 400 naming it, on create and on update; ids and aliases pass", async () => {
    const project = await t.admin.createProject("allow-lists");
    const keys = `/admin/projects/${project.id}/keys`;
    const created = await t.admin.request("POST", keys, {
      name: "typo",
      allowed_models: [TINY_MODEL, "tinny", "gpt-5"],
    });
    expectError(created, 400, {
      param: "allowed_models",
      code: "unknown_model",
      type: "invalid_request_error",
    });
    expect(created.body.error.message).toContain("'tinny', 'gpt-5'");
    expect(created.body.error.message).toContain(`${TINY_MODEL}, ${TINY_ALIAS}`);
    expect((await t.admin.request("GET", keys)).body.data).toEqual([]);

    const key = await t.admin.createKey(project.id, { allowed_models: [TINY_MODEL, TINY_ALIAS] });
    expect(key.allowed_models).toEqual([TINY_MODEL, TINY_ALIAS]);
    const updated = await t.admin.request("PATCH", `${keys}/${key.id}`, { allowed_models: ["nope"] });
    expectError(updated, 400, { param: "allowed_models", code: "unknown_model" });
    expect(updated.body.error.message).toContain("'nope'");
    // Refused means unchanged: the key still works with its model.
    expect((await chat(t.url, key.secret)).status).toBe(200);
    // None and every model stay possible.
    for (const allowed of [[], null]) {
      const res = await t.admin.request("PATCH", `${keys}/${key.id}`, { allowed_models: allowed });
      expect(res.status, res.text).toBe(200);
    }
  });
});

describe("keys create --models", () => {
  let main: string;
  let dir: string;

  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "sb-cli-models-"));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("checks the names against the config it loads and says which are unknown", async () => {
    const config = join(dir, "switchboard.yaml");
    writeFileSync(
      config,
      JSON.stringify({ models: [{ id: "qwen", aliases: ["default"], source: inject("tinyModelPath") }] }),
    );
    const dataDir = ["--data-dir", join(dir, "data")];
    const refused = await runCli(main, ["keys", "create", "--models", "qwen,qwne,llama", ...dataDir], dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("'qwne', 'llama'");
    expect(refused.stderr).toContain(`the config file ${config}`);
    expect(refused.stdout).not.toContain("sk-sb-");

    const accepted = await runCli(main, ["keys", "create", "--models", "qwen,default", ...dataDir], dir);
    expect(accepted.code, accepted.stderr).toBe(0);

    // Without a config file the server would serve the demo model, and only that.
    const elsewhere = mkdtempSync(join(dir, "elsewhere-"));
    const demo = await runCli(main, ["keys", "create", "--models", "qwen", ...dataDir], elsewhere);
    expect(demo.code).toBe(2);
    expect(demo.stderr).toContain("'qwen'");
    expect(demo.stderr).toContain("switchboard-demo");
    expect(demo.stderr).toContain("--config FILE");
  });
});
