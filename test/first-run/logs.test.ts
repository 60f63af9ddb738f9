import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AccessServer, chat, startAccessServer } from "../helpers/access.js";
import { cliEnv } from "../helpers/cli-server.js";
import { compiledCli, runCli } from "../helpers/compiled-cli.js";

/**
 * Logs for people on a terminal, JSON for everything else; request lines say which key and
 * project called. The terminal is a real pseudo-terminal: util-linux `script` runs the CLI in one.
 */

function hasScript(): boolean {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const shellQuote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;

/** Runs the CLI with a pseudo-terminal as its stdout (and stdin); all it printed, and its exit code. */
function runOnTerminal(main: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  const command = [process.execPath, main, ...args].map(shellQuote).join(" ");
  return new Promise((resolve) => {
    // -q quiet, -f flush at once, -e exit with the command's code, -c the command; no typescript file.
    execFile(
      "script",
      ["-qfec", command, "/dev/null"],
      { cwd, env: cliEnv(), timeout: 30_000 },
      (error, stdout) =>
        resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout }),
    );
  });
}

/** Terminal colour codes (ESC [ … m), built from the escape character so the source holds none. */
const COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const plain = (text: string) => text.replaceAll(COLOUR, "").replaceAll("\r", "");
const lines = (text: string) => plain(text).split("\n").filter(Boolean);

describe("log format", () => {
  let main: string;
  let dir: string;
  let busy: net.Server;
  // A busy port stops `serve` right after its first log lines, with no model loaded: a short,
  // self-ending run that still logs through the server's logger.
  let serveArgs: string[];

  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "sb-logs-"));
    busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = (busy.address() as net.AddressInfo).port;
    serveArgs = ["serve", "--port", String(port), "--data-dir", join(dir, "data")];
  });
  afterAll(async () => {
    await new Promise((resolve) => busy?.close(resolve));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!hasScript())(
    "is readable lines on a terminal, and JSON there with --log-format json",
    async () => {
      const pretty = await runOnTerminal(main, serveArgs, dir);
      expect(pretty.code).toBe(1);
      const text = lines(pretty.output);
      const configLine = text.find((l) => l.includes("no config file"));
      expect(configLine, pretty.output).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: no config file/);
      expect(text.some((l) => /^\[[\d:.]+\] WARN: No model is configured/.test(l))).toBe(true);
      expect(text.filter((l) => l.startsWith("{"))).toEqual([]);

      const json = await runOnTerminal(main, [...serveArgs, "--log-format", "json"], dir);
      const logLines = lines(json.output).filter((l) => !l.startsWith("switchboard:"));
      expect(logLines.length).toBeGreaterThan(1);
      for (const line of logLines) expect(() => JSON.parse(line), line).not.toThrow();
    },
  );

  if (!hasScript()) console.warn("util-linux `script` is missing: the terminal log test is skipped");

  it("is JSON lines when stdout is not a terminal, unless log_format says pretty", async () => {
    const piped = await runCli(main, serveArgs, dir);
    expect(piped.code).toBe(1);
    const entries = piped.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(entries[0]).toMatchObject({ level: 30, msg: expect.stringMatching(/^no config file/) });

    const config = join(dir, "pretty.yaml");
    writeFileSync(config, "log_format: pretty\n");
    const forced = await runCli(main, [...serveArgs, "--config", config], dir);
    expect(lines(forced.stdout)[0]).toMatch(/^\[[\d:.]+\] INFO: config file: /);
  });
});

describe("request log lines", () => {
  let t: AccessServer;

  beforeAll(async () => {
    t = await startAccessServer();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it("carry the caller's key id and project id, never the secret", async () => {
    const { project, key } = await t.admin.projectWithKey();
    expect((await chat(t.url, key.secret)).status).toBe(200);
    const entries = t.logs.flatMap((chunk) => chunk.split("\n").filter(Boolean)).map((l) => JSON.parse(l));
    const line = entries.find((e) => e.msg === "request" && e.route === "/v1/chat/completions");
    expect(line).toMatchObject({ status: 200, projectId: project.id, keyId: key.id, model: "tiny" });
    // The admin calls are logged with the bootstrap admin key's principal too.
    const adminLine = entries.find((e) => e.msg === "request" && e.route === "/admin/projects");
    expect(adminLine).toHaveProperty("projectId");
    const all = t.logs.join("");
    for (const secret of [key.secret, t.adminKey as string]) expect(all).not.toContain(secret);
  });
});
