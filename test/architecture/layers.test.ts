import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { cruise, type IConfiguration, type IViolation } from "dependency-cruiser";
import { describe, expect, it } from "vitest";

/**
 * The layer rules of .dependency-cruiser.cjs (run by `npm run check`) hold for the tree, and they
 * would catch an import that points up or goes round in a circle.
 */

const rules = createRequire(import.meta.url)("../../.dependency-cruiser.cjs") as IConfiguration;

async function violationsIn(baseDir: string): Promise<IViolation[]> {
  const result = await cruise(["src"], {
    baseDir,
    validate: true,
    ruleSet: { forbidden: rules.forbidden },
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
  });
  if (typeof result.output === "string") throw new Error("expected a cruise result object");
  return result.output.summary.violations;
}

/** A small tree of TypeScript files: path → source. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "sb-layers-"));
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), source);
  }
  return root;
}

describe("layers that point one way", () => {
  it("hold for the source tree", async () => {
    const violations = await violationsIn(process.cwd());
    expect(violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });

  it("catch a planted upward import, a type-only one included, and a cycle", async () => {
    const root = tree({
      "src/core/errors.ts": 'import { envelope } from "../http/errors.js";\nexport const x = envelope;\n',
      "src/http/errors.ts": "export const envelope = 1;\n",
      "src/backends/local.ts": 'import type { Route } from "../api/chat.js";\nexport type B = Route;\n',
      "src/api/chat.ts": "export type Route = string;\n",
      "src/router/a.ts": 'import { b } from "./b.js";\nexport const a = () => b;\n',
      "src/router/b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n',
    });
    const found = (await violationsIn(root)).map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
    expect(found).toEqual(
      expect.arrayContaining([
        "layer-1: src/core/errors.ts → src/http/errors.ts",
        expect.stringMatching(/^layer-\d+: src\/backends\/local\.ts → src\/api\/chat\.ts$/),
        expect.stringMatching(/^no-circular: src\/router\/a\.ts → src\/router\/b\.ts$/),
      ]),
    );
  });
});
