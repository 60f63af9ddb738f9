import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SERVE_NODE_FLAGS } from "../../src/cli/node-flags.js";
import { llamaServerForTests } from "../engines/llama-server-binary.js";
import { call } from "../helpers/access.js";
import { startCliServer } from "../helpers/cli-server.js";
import { compiledCli } from "../helpers/compiled-cli.js";

const binary = await llamaServerForTests();

/**
 * What the server process holds: a server whose models run in engine processes (llama-server or
 * the runner) never loads llama.cpp's bindings itself; tokenizing and grammar parsing happen in
 * the engine process. The native addon is what costs the memory, and it shows in the process's maps.
 */
describe("the server process's footprint", () => {
  let main: string;
  let dir: string;
  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "sb-footprint-"));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs with the same node flags from the `switchboard` command and from npm start", () => {
    const shebang = readFileSync(new URL("../../src/main.ts", import.meta.url), "utf8").split("\n")[0];
    const node = ["node", ...SERVE_NODE_FLAGS].join(" ");
    expect(shebang).toBe(
      SERVE_NODE_FLAGS.length > 0 ? `#!/usr/bin/env -S ${node}` : `#!/usr/bin/env ${node}`,
    );
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.start).toBe(`${node} build/src/main.js serve`);
  });

  for (const engine of ["runner", "llama-server"] as const) {
    it.runIf(existsSync("/proc/self/maps") && (engine === "runner" || binary !== undefined))(
      `does not load node-llama-cpp into the server when the model runs on ${engine}`,
      async () => {
        const cwd = mkdtempSync(join(dir, `${engine}-`));
        const config = {
          port: 0,
          demo_model: false,
          data_dir: "data",
          engines: binary ? { llama_server: { binary } } : {},
          models: [{ id: "tiny", source: inject("tinyModelPath"), engine, parallel: 1, context_size: 512 }],
        };
        writeFileSync(join(cwd, "switchboard.yaml"), JSON.stringify(config));
        const server = await startCliServer(main, [], cwd);
        try {
          // Tokenizing and a grammar (json_object): both the engine process's work.
          const json = await call(server.url, "POST", "/v1/chat/completions", {
            body: {
              model: "tiny",
              messages: [{ role: "user", content: "Say something in JSON" }],
              response_format: { type: "json_object" },
              max_tokens: 8,
            },
          });
          expect(json.status).toBe(200);
          const tokens = await call(server.url, "POST", "/tokenize", {
            body: { model: "tiny", content: "hello" },
          });
          expect(tokens.status).toBe(200);
          const maps = readFileSync(`/proc/${server.child.pid}/maps`, "utf8");
          expect(maps).not.toMatch(/node-llama-cpp|llama-addon/);
        } finally {
          await server.stop();
        }
      },
    );
  }
});
