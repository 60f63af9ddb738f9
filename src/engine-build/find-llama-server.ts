import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { listCachedBuilds, resolveCacheDir } from "./binary-cache.js";
import { readSourceBundle } from "./source-bundle.js";
import { which } from "./toolchain.js";

export interface LlamaServerBinary {
  path: string;
  origin: "config" | "PATH" | "build cache";
}

export interface LlamaServerSettings {
  binary?: string;
  cache_dir?: string;
}

/**
 * The llama-server binary to run: `engines.llama_server.binary` from the config, else
 * `llama-server` on PATH, else a `switchboard engine build` in the cache (a build of the source
 * revision node-llama-cpp ships first). Nothing is downloaded. A configured binary that does not
 * exist is an error, not a silent fallback.
 */
export async function findLlamaServer(
  settings: LlamaServerSettings,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LlamaServerBinary | undefined> {
  if (settings.binary) {
    const path = resolve(settings.binary);
    if (!existsSync(path))
      throw new Error(`engines.llama_server.binary is '${settings.binary}', but no such file exists.`);
    return { path, origin: "config" };
  }
  const onPath = which("llama-server", env);
  if (onPath) return { path: onPath, origin: "PATH" };
  const bundle = await readSourceBundle().catch(() => undefined);
  const [best] = await listCachedBuilds(resolveCacheDir(settings.cache_dir, env), {
    revision: bundle?.revision,
    cuda: existsSync("/dev/nvidiactl"),
  });
  return best ? { path: best.binary, origin: "build cache" } : undefined;
}
