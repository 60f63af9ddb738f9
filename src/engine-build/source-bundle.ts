import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The llama.cpp source that node-llama-cpp's npm package ships, as a git bundle. */
export interface SourceBundle {
  /** Path of `llama/gitRelease.bundle`. */
  path: string;
  /** The commit the bundle's HEAD points at: the source revision every build is keyed by. */
  revision: string;
  /** node-llama-cpp's own tag of the release (llama.cpp.info.json), for messages only. */
  release: string | undefined;
}

/** Finds node-llama-cpp's llama directory from wherever the module resolves. */
export function nodeLlamaCppLlamaDir(): string | undefined {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve("node-llama-cpp"));
  } catch {
    return undefined;
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "llama"))) return join(dir, "llama");
  }
  return undefined;
}

/**
 * Reads the bundle's header (`# v2 git bundle` then `<sha> <ref>` lines) without git, so the
 * revision is known cheaply at server start too.
 */
export async function readSourceBundle(llamaDir = nodeLlamaCppLlamaDir()): Promise<SourceBundle | undefined> {
  if (!llamaDir) return undefined;
  const path = join(llamaDir, "gitRelease.bundle");
  if (!existsSync(path)) return undefined;
  const header = await readHead(path, 4096);
  const lines = header.split("\n");
  if (!/^# v[23] git bundle/.test(lines[0] ?? "")) return undefined;
  let revision: string | undefined;
  for (const line of lines.slice(1)) {
    if (line === "") break;
    const match = /^([0-9a-f]{40,64}) (\S+)$/.exec(line);
    if (!match) continue;
    if (match[2] === "HEAD" || revision === undefined) revision = match[1];
  }
  if (!revision) return undefined;
  let release: string | undefined;
  try {
    const info = JSON.parse(await readHead(join(llamaDir, "llama.cpp.info.json"), 4096)) as { tag?: string };
    release = info.tag;
  } catch {
    release = undefined;
  }
  return { path, revision, release };
}

async function readHead(path: string, bytes: number): Promise<string> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead).toString("latin1");
  } finally {
    await handle.close();
  }
}
