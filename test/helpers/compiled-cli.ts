import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

/**
 * The CLI compiled from the current sources into a cache of its own (rebuilt when a source is
 * newer), so a test never races anyone else's `npm run build` into build/, and never runs a
 * build/ older than the sources.
 */
export async function compiledCli(): Promise<string> {
  const root = process.cwd();
  const out = join(root, "node_modules", ".cache", "switchboard-test", "cli");
  const main = join(out, "src", "main.js");
  const newestSource = Math.max(
    ...listFiles(join(root, "src")).map((f) => statSync(f).mtimeMs),
    statSync(join(root, "package.json")).mtimeMs,
  );
  if (!existsSync(main) || statSync(main).mtimeMs < newestSource) {
    mkdirSync(out, { recursive: true });
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    // Emits even if a work-in-progress file elsewhere does not typecheck; main.js is what matters.
    await promisify(execFile)(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", out], {
      cwd: root,
    }).catch(() => {});
    if (!existsSync(main)) throw new Error("could not compile the CLI");
  }
  return main;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/** Runs the compiled CLI to completion. */
export async function runCli(
  main: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main, ...args],
      // A SWITCHBOARD_* variable of the caller must not steer the CLI under test.
      { cwd, env: cliEnv(), timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("SWITCHBOARD_")) env[name] = value;
  }
  return env;
}
