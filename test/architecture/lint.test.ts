import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

/** The lint configuration checks something: the recommended rules are on. */

const run = promisify(execFile);
const BIOME = join(process.cwd(), "node_modules", ".bin", "biome");

/** Lints `source` as src/planted.ts under the project's biome.json; the diagnostics' rule names. */
async function lint(source: string): Promise<{ code: number; rules: string[] }> {
  const root = mkdtempSync(join(tmpdir(), "sb-lint-"));
  copyFileSync(join(process.cwd(), "biome.json"), join(root, "biome.json"));
  mkdirSync(join(root, "src"));
  writeFileSync(join(root, "src", "planted.ts"), source);
  const found = await run(BIOME, ["lint", "--max-diagnostics=50", "src"], { cwd: root }).then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      out: err.stdout + err.stderr,
    }),
  );
  return { code: found.code, rules: [...new Set(found.out.match(/lint\/\w+\/\w+/g) ?? [])].sort() };
}

describe("lint", () => {
  it("fails a file with debugger, == and any", async () => {
    const result = await lint("export function f(a: any) {\n  debugger;\n  return a == 1;\n}\n");
    expect(result.code).not.toBe(0);
    expect(result.rules).toEqual(
      expect.arrayContaining([
        "lint/suspicious/noDebugger",
        "lint/suspicious/noDoubleEquals",
        "lint/suspicious/noExplicitAny",
      ]),
    );
  });

  it("passes a clean file", async () => {
    const result = await lint("export const next = (a: number): number => a + 1;\n");
    expect(result).toEqual({ code: 0, rules: [] });
  });
});
