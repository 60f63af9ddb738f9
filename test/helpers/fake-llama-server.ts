import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MANIFEST } from "../../src/engine-build/binary-cache.js";

/**
 * llama-server binaries that are never run as servers: tests read what Switchboard says about
 * them (where they came from, what they were built from). Each exits 1 if started.
 */

/** A finished `switchboard engine build` in a cache dir, as the build leaves it. */
export function fakeLlamaServerBuild(cacheDir: string): string {
  const dir = join(cacheDir, "0123456789ab-fedcba987654");
  mkdirSync(join(dir, "bin"), { recursive: true });
  const binary = join(dir, "bin", "llama-server");
  writeFileSync(binary, "#!/bin/sh\nexit 1\n");
  chmodSync(binary, 0o755);
  const manifest = {
    revision: "0123456789abcdef0123456789abcdef01234567",
    release: "b7000",
    flags: { GGML_NATIVE: "ON", LLAMA_CURL: "OFF" },
    cuda: false,
    binary: "bin/llama-server",
    builtAt: "2026-01-02T03:04:05.000Z",
    buildSeconds: 300,
    compiler: "GNU 12.2.0",
  };
  writeFileSync(join(dir, MANIFEST), JSON.stringify(manifest));
  return binary;
}

/** A llama-server built elsewhere: it describes itself with `--version`, on stderr as llama.cpp does. */
export function fakeForeignLlamaServer(): string {
  const binary = join(mkdtempSync(join(tmpdir(), "sb-bin-")), "llama-server");
  writeFileSync(
    binary,
    [
      "#!/bin/sh",
      'if [ "$1" = "--version" ]; then',
      '  echo "load_backend: loaded CPU backend" >&2',
      '  echo "version: 0.4.0 (build 6543, commit a1b2c3d4)" >&2',
      '  echo "built with cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu" >&2',
      "  exit 0",
      "fi",
      "exit 1",
      "",
    ].join("\n"),
  );
  chmodSync(binary, 0o755);
  return binary;
}
