import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { COMMANDS, SUBCOMMANDS } from "../../src/cli/help.js";
import { compiledCli, runCli } from "../helpers/compiled-cli.js";

/** The command line a new user explores: help everywhere, and lists that say what matters. */

describe("the command line", () => {
  let main: string;
  let dir: string;

  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "sb-cli-help-"));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers --help and -h on every command and subcommand with exit 0 and a usage text", async () => {
    const paths = [
      [],
      ...COMMANDS.map((c) => [c]),
      ...Object.entries(SUBCOMMANDS).flatMap(([c, subs]) => subs.map((s) => [c, s])),
    ];
    expect(paths.map((p) => p.join(" "))).toEqual(
      expect.arrayContaining([
        "keys",
        "keys create",
        "keys list",
        "keys revoke",
        "models list",
        "engine build",
      ]),
    );
    const runs = paths.flatMap((path) => [
      [...path, "--help"],
      [...path, "-h"],
    ]);
    runs.push(["help", "keys"], ["help", "serve"]);
    // Help loads no engine or database, so these are quick; four at a time on a small machine.
    for (let i = 0; i < runs.length; i += 4) {
      const batch = runs.slice(i, i + 4);
      const results = await Promise.all(batch.map((args) => runCli(main, args, dir)));
      for (const [j, result] of results.entries()) {
        const args = (batch[j] as string[]).join(" ");
        expect(result.code, `${args}: ${result.stderr}`).toBe(0);
        expect(result.stdout, args).toMatch(/^(Usage:|switchboard — )/);
        const command = (batch[j] as string[]).find((a) => COMMANDS.includes(a));
        if (command) expect(result.stdout, args).toContain(`switchboard ${command}`);
      }
    }
  });

  it("says in the key and project help which options pick the database", async () => {
    for (const command of ["keys", "projects"]) {
      const help = await runCli(main, [command, "--help"], dir);
      for (const flag of ["--config", "--data-dir", "--database"]) expect(help.stdout).toContain(flag);
    }
    const serve = await runCli(main, ["serve", "--help"], dir);
    expect(serve.stdout).toContain("ID=");
    expect(serve.stdout).toContain("--log-format");
  });

  it("sends a missing or unknown subcommand to its help with exit 2", async () => {
    const missing = await runCli(main, ["keys"], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("'keys' needs a subcommand: create, list, revoke");
    const unknown = await runCli(main, ["models", "frob"], dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Unknown models command 'frob'");
  });

  it("lists keys with their allowed models, limits and expiry", async () => {
    const dataDir = join(dir, "data");
    const tiny = inject("tinyModelPath");
    const config = join(dir, "models.yaml");
    writeFileSync(config, JSON.stringify({ models: [{ id: "tiny", aliases: ["small"], source: tiny }] }));
    const created = await runCli(
      main,
      ["keys", "create", "--name", "ci", "--models", "tiny,small", "--rpm", "60", "--tpm", "1000"].concat([
        "--expires-days",
        "30",
        "--data-dir",
        dataDir,
        "--config",
        config,
      ]),
      dir,
    );
    expect(created.code, created.stderr).toBe(0);
    const plain = await runCli(main, ["keys", "create", "--name", "open", "--data-dir", dataDir], dir);
    expect(plain.code, plain.stderr).toBe(0);

    const listed = await runCli(main, ["keys", "list", "--data-dir", dataDir], dir);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, ...rows] = listed.stdout.trim().split("\n");
    expect(header).toBe("ID\tNAME\tROLE\tKEY\tSTATE\tMODELS\tLIMITS\tEXPIRES");
    const ci = rows.find((r) => r.split("\t")[1] === "ci")?.split("\t");
    expect(ci?.slice(2, 7)).toEqual([
      "member",
      expect.any(String),
      "active",
      "tiny,small",
      "rpm=60,tpm=1000",
    ]);
    const expires = Date.parse(ci?.[7] ?? "");
    expect(Math.abs(expires - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000);
    const open = rows.find((r) => r.split("\t")[1] === "open")?.split("\t");
    expect(open?.slice(5)).toEqual(["all", "none", "never"]);
    expect(listed.stdout).not.toMatch(/sk-sb-[A-Za-z0-9]{10}/);
  });

  it("lists models with their file, size or download state, engine and context", async () => {
    const tiny = inject("tinyModelPath");
    const config = join(dir, "list.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        data_dir: join(dir, "list-data"),
        models: [
          { id: "here", aliases: ["local"], source: tiny, engine: "in-process" },
          {
            id: "there",
            source: "hf:owner/repo/remote.gguf",
            context_size: 1024,
            parallel: 2,
            engine: "runner",
          },
        ],
      }),
    );
    const result = await runCli(main, ["models", "list", "--config", config], dir);
    expect(result.code, result.stderr).toBe(0);
    const out = result.stdout;
    expect(out).toContain(`config file: ${config}`);
    expect(out).toContain("here (aliases: local)");
    expect(out).toMatch(
      new RegExp(`file +${tiny.replaceAll(/[.*+?^${}()|[\]\\/]/g, "\\$&")} +\\[\\d+ KiB\\]`),
    );
    expect(out).toContain("engine   in-process");
    expect(out).toMatch(/context +\d+ tokens per sequence \(trained \d+\), 4 in parallel/);
    expect(out).toContain("there");
    expect(out).toMatch(/remote\.gguf +\[not downloaded/);
    expect(out).toContain("engine   runner");
    expect(out).toContain("context  1024 tokens per sequence (configured), 2 in parallel");

    const demo = await runCli(main, ["models", "list", "--data-dir", join(dir, "demo-data")], dir);
    expect(demo.stdout).toContain("switchboard-demo — the built-in demo model");
    expect(demo.stdout).toContain("not generated yet");
    expect(demo.stdout).toMatch(/engine +auto: (llama-server|runner)/);
  });
});
