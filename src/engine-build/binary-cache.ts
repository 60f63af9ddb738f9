import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join, resolve } from "node:path";

/**
 * Where `switchboard engine build` keeps llama-server builds: one directory per source revision
 * and flag set, each with `bin/llama-server` and a `build-info.json` written last (a directory
 * without it is an unfinished build and is ignored).
 */
export const MANIFEST = "build-info.json";

export interface BuildManifest {
  revision: string;
  release: string | undefined;
  /** The cmake -D flags requested (before dropping ones the source does not know). */
  flags: Record<string, string>;
  cuda: boolean;
  /** Relative to the build directory. */
  binary: string;
  builtAt: string;
  buildSeconds: number;
  compiler: string | undefined;
}

export interface CachedBuild {
  dir: string;
  binary: string;
  manifest: BuildManifest;
}

/** `$XDG_CACHE_HOME/switchboard/llama-server` or `~/.cache/switchboard/llama-server`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "switchboard", "llama-server");
}

/** The configured cache dir, else SWITCHBOARD_LLAMA_SERVER_CACHE_DIR, else the default. */
export function resolveCacheDir(
  configured: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const dir = configured ?? env.SWITCHBOARD_LLAMA_SERVER_CACHE_DIR;
  return dir ? resolve(dir) : defaultCacheDir(env);
}

/** The directory name of a build: the revision it was built from and a digest of its flags. */
export function buildKey(revision: string, flags: Record<string, string>): string {
  const canonical = Object.keys(flags)
    .sort()
    .map((k) => `${k}=${flags[k]}`)
    .join("\n");
  const digest = createHash("sha256").update(`${revision}\n${canonical}`).digest("hex").slice(0, 12);
  return `${revision.slice(0, 12)}-${digest}`;
}

export async function readCachedBuild(dir: string): Promise<CachedBuild | undefined> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST), "utf8")) as BuildManifest;
    const binary = join(dir, manifest.binary);
    if (!existsSync(binary)) return undefined;
    return { dir, binary, manifest };
  } catch {
    return undefined;
  }
}

/**
 * Every finished build in the cache, best first: builds of `revision` before others, CUDA builds
 * before CPU ones when `preferCuda`, then the newest.
 */
export async function listCachedBuilds(
  cacheDir: string,
  prefer: { revision?: string; cuda?: boolean } = {},
): Promise<CachedBuild[]> {
  let entries: string[];
  try {
    entries = await readdir(cacheDir);
  } catch {
    return [];
  }
  const builds: CachedBuild[] = [];
  for (const entry of entries) {
    if (entry.startsWith(".") || entry.includes(".tmp")) continue;
    const build = await readCachedBuild(join(cacheDir, entry));
    if (build) builds.push(build);
  }
  const score = (b: CachedBuild) =>
    (prefer.revision && b.manifest.revision === prefer.revision ? 4 : 0) +
    (prefer.cuda !== undefined && b.manifest.cuda === prefer.cuda ? 2 : 0);
  return builds.sort(
    (a, b) => score(b) - score(a) || Date.parse(b.manifest.builtAt) - Date.parse(a.manifest.builtAt),
  );
}
