import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import type { LlamaServerIdentity } from "../core/generation.js";
import { readCachedBuild } from "./binary-cache.js";
import type { LlamaServerBinary } from "./find-llama-server.js";

/** `--version` prints and exits at once; a binary that hangs instead is not waited for. */
const VERSION_TIMEOUT_MS = 5_000;
/** Its output is two lines; anything past this is not version text. */
const VERSION_MAX_BYTES = 16 * 1024;

/**
 * What is known of a llama-server binary: a `switchboard engine build` (found in the cache, or
 * configured by its path there) is described by its build manifest; any other binary by its own
 * `--version` (build number, commit, compiler and target). Nothing here fails: a binary that says
 * nothing is described by its origin and path alone.
 */
export async function describeLlamaServer(binary: LlamaServerBinary): Promise<LlamaServerIdentity> {
  const identity: LlamaServerIdentity = { origin: binary.origin, path: binary.path };
  // A build's binary is <build dir>/bin/llama-server, with the manifest in the build dir.
  const build = await readCachedBuild(dirname(dirname(binary.path)));
  if (build && resolve(build.binary) === resolve(binary.path)) {
    const { manifest } = build;
    return {
      ...identity,
      revision: manifest.revision,
      ...(manifest.release !== undefined && { release: manifest.release }),
      flags: manifest.flags,
      cuda: manifest.cuda,
      builtAt: manifest.builtAt,
      ...(manifest.compiler !== undefined && { compiler: manifest.compiler }),
    };
  }
  return { ...identity, ...parseVersionText(await versionText(binary.path)) };
}

/**
 * llama.cpp's `--version` output (on stderr), possibly among lines about the devices it found:
 * `version: 0.4.0 (build 7123, commit 0a1b2c3d)` in newer releases, `version: 6123 (0a1b2c3d)` in
 * older ones, then `built with <compiler> for <target>`.
 */
export function parseVersionText(
  text: string,
): Pick<LlamaServerIdentity, "revision" | "release" | "compiler"> {
  const newer = /^version:\s*\S+\s*\(build (\d+), commit ([0-9a-f]{6,40}|unknown)\)/im.exec(text);
  const older = /^version:\s*(\d+)\s*\(([0-9a-f]{6,40})\)/im.exec(text);
  const build = newer?.[1] ?? older?.[1];
  const commit = newer?.[2] ?? older?.[2];
  const built = /^built with (.{1,200})$/im.exec(text);
  return {
    ...(commit !== undefined && commit !== "unknown" && { revision: commit }),
    ...(build !== undefined && { release: `b${build}` }),
    ...(built?.[1] !== undefined && { compiler: built[1].trim() }),
  };
}

function versionText(path: string): Promise<string> {
  return new Promise((done) => {
    execFile(
      path,
      ["--version"],
      { timeout: VERSION_TIMEOUT_MS, maxBuffer: VERSION_MAX_BYTES, encoding: "utf8" },
      (_error, stdout, stderr) => done(`${stdout ?? ""}\n${stderr ?? ""}`),
    );
  });
}
