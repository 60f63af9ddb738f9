import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliServer, cliEnv, startCliServer } from "../helpers/cli-server.js";
import { compiledCli } from "../helpers/compiled-cli.js";

/**
 * The README's first TypeScript snippet, as written, against `serve` with no configuration — what
 * `npm start` runs — so the quick start cannot drift from what the server serves again. Only the
 * address changes: the test server takes a free port instead of 8080.
 */

const README_ADDRESS = "http://127.0.0.1:8080";

function firstTypeScriptSnippet(): string {
  const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
  const match = /^```ts\n([\s\S]*?)^```$/m.exec(readme);
  if (!match?.[1]) throw new Error("README.md has no ```ts snippet");
  return match[1];
}

describe("the README quick start", () => {
  let dir: string;
  let server: CliServer | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sb-readme-"));
    // Like `npm start`: no config file, no flags but a free port, the default ./data.
    server = await startCliServer(await compiledCli(), ["--port", "0"], dir);
  });
  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs its first snippet as written against the server `npm start` starts", async () => {
    const snippet = firstTypeScriptSnippet();
    expect(snippet.split(README_ADDRESS).length - 1, "the snippet names the default address once").toBe(1);
    const url = server?.url as string;
    const javascript = ts.transpileModule(snippet.replace(README_ADDRESS, url), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      reportDiagnostics: true,
    });
    expect(javascript.diagnostics ?? []).toEqual([]);
    // Inside the repository, so `import "openai"` resolves from its node_modules as for a user.
    const scratch = join(process.cwd(), "node_modules", ".cache", "switchboard-test", "readme");
    mkdirSync(scratch, { recursive: true });
    const file = join(scratch, `quick-start-${process.pid}.mjs`);
    writeFileSync(file, javascript.outputText);

    const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [file],
        { env: cliEnv(), timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
      );
    });
    rmSync(file, { force: true });
    expect(run.code, run.stderr).toBe(0);
    // The random-weight demo model says something or nothing; the server says it answered.
    const answered = server?.logs.find((l) => l.msg === "request" && l.route === "/v1/chat/completions");
    expect(answered).toMatchObject({ status: 200, model: "switchboard-demo", stream: true });
  });

  it("answers embeddings too, from the demo embedding model served beside the chat one", async () => {
    const response = await fetch(`${server?.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "switchboard-demo-embed", input: ["hello", "world"] }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { data: { index: number; embedding: number[] }[] };
    expect(body.data.map((d) => d.index)).toEqual([0, 1]);
    expect(body.data[0]?.embedding.length).toBeGreaterThan(0);
    const models = (await (await fetch(`${server?.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(["switchboard-demo", "switchboard-demo-embed"]);
  });
});
