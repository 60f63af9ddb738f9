import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { call, chat } from "../helpers/access.js";
import { type CliServer, startCliServer } from "../helpers/cli-server.js";
import { compiledCli, runCli } from "../helpers/compiled-cli.js";

/**
 * What `serve` tells a new user at start-up, through the real CLI: which config file it read, a
 * busy port at once (before any model loads), and models named on the command line.
 */

/** A port held by another listener for the whole test. */
function holdPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const holder = net.createServer();
  return new Promise((resolve) => {
    holder.listen(0, "127.0.0.1", () => {
      const port = (holder.address() as net.AddressInfo).port;
      resolve({ port, close: () => new Promise((done) => holder.close(() => done())) });
    });
  });
}

const jsonLines = (stdout: string) =>
  stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe("serve at start-up", () => {
  let main: string;
  let dir: string;
  let busy: { port: number; close: () => Promise<void> };
  let server: CliServer | undefined;

  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "sb-startup-"));
    busy = await holdPort();
  });
  afterAll(async () => {
    await server?.stop();
    await busy?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("fails at once on a busy port, before any model loads, saying which port and what to do", async () => {
    const started = Date.now();
    // A model file that does not exist: had loading begun, the error would be about it.
    const result = await runCli(
      main,
      ["serve", "--port", String(busy.port), "--model", join(dir, "never-loaded.gguf"), "--data-dir", dir],
      dir,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`switchboard: port ${busy.port} on 127.0.0.1 is already in use`);
    expect(result.stderr).toContain("--port N");
    expect(result.stderr).not.toContain("never-loaded");
    expect(jsonLines(result.stdout).map((l) => l.msg)).not.toContain("model loaded");
    // Node's start and the imports take most of this; no model load is in it.
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("logs the config file it read as its first line: --config, ./switchboard.yaml, or none", async () => {
    const named = join(dir, "named.yaml");
    writeFileSync(named, "log_level: info\n");
    const cases = [
      { cwd: dir, args: ["--config", named], file: named, from: "--config" },
      { cwd: mkdtempSync(join(dir, "empty-")), args: [], file: null, from: null },
    ];
    for (const c of cases) {
      const result = await runCli(
        main,
        ["serve", "--port", String(busy.port), "--data-dir", dir, ...c.args],
        c.cwd,
      );
      const [first] = jsonLines(result.stdout);
      expect(first, result.stdout).toMatchObject({ level: 30, configFile: c.file, configFrom: c.from });
      expect(String(first?.msg)).toMatch(c.file ? `config file: ${c.file}` : /^no config file/);
    }
  });

  it("serves --model ID=SOURCE under that id, beside a --model named after its file, with ./switchboard.yaml", async () => {
    const tiny = inject("tinyModelPath");
    const cwd = mkdtempSync(join(dir, "cwd-"));
    // Picked up from the working directory without a flag: the log line names it.
    writeFileSync(
      join(cwd, "switchboard.yaml"),
      JSON.stringify({ port: 0, demo_model: false, data_dir: "data" }),
    );
    server = await startCliServer(main, ["--model", `chat=${tiny}`, "--model", tiny], cwd);
    expect(server.logs[0]).toMatchObject({
      configFile: join(cwd, "switchboard.yaml"),
      configFrom: "the working directory",
    });
    const models = await call(server.url, "GET", "/v1/models");
    const fileId = basename(tiny).replace(/\.gguf$/, "");
    expect(models.body.data.map((m: { id: string }) => m.id)).toEqual(["chat", fileId]);
    for (const model of ["chat", fileId])
      expect((await chat(server.url, undefined, { model })).status).toBe(200);
    // Ready only once both are loaded; the port was bound before they loaded.
    const messages = server.logs.map((l) => l.msg);
    expect(
      messages.indexOf("port bound; loading models (/ready answers 503 until they are loaded)"),
    ).toBeLessThan(messages.indexOf("model loaded"));
  });

  it("refuses two --model files of one name, saying to name one with ID=", async () => {
    const tiny = inject("tinyModelPath");
    const copy = join(mkdtempSync(join(dir, "copy-")), basename(tiny));
    writeFileSync(copy, "not loaded");
    const result = await runCli(main, ["serve", "--port", "0", "--model", tiny, "--model", copy], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`the name '${basename(tiny).replace(/\.gguf$/, "")}' is used twice`);
    expect(result.stderr).toContain("--model ID=SOURCE");
  });
});
