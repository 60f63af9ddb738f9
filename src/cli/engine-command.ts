import { parseArgs } from "node:util";
import { listCachedBuilds, resolveCacheDir } from "../engine-build/binary-cache.js";
import { BuildError, buildLlamaServer } from "../engine-build/build-llama-server.js";
import { findLlamaServer } from "../engine-build/find-llama-server.js";
import { ToolchainError } from "../engine-build/toolchain.js";
import { loadCliConfig } from "./config-options.js";
import { UsageError } from "./usage-error.js";

/** `switchboard engine ...`; returns the exit code. */
export async function runEngineCommand(args: string[], write: (line: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "build") return build(rest, write);
  if (sub === "status") {
    const { config } = loadCliConfig(rest);
    const found = await findLlamaServer(config.engines.llama_server);
    write(found ? `llama-server: ${found.path} (${found.origin})` : "llama-server: not available");
    const cacheDir = resolveCacheDir(config.engines.llama_server.cache_dir);
    for (const b of await listCachedBuilds(cacheDir)) {
      write(
        `cached: ${b.binary} (llama.cpp ${b.manifest.revision.slice(0, 12)}, ${b.manifest.cuda ? "CUDA" : "CPU"}, built ${b.manifest.builtAt})`,
      );
    }
    return found ? 0 : 1;
  }
  throw new UsageError(`Unknown engine command '${sub ?? ""}': use 'build' or 'status'.`);
}

async function build(args: string[], write: (line: string) => void): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      cuda: { type: "string", default: "auto" },
      "no-native": { type: "boolean", default: false },
      jobs: { type: "string" },
      force: { type: "boolean", default: false },
      "cache-dir": { type: "string" },
    },
    strict: true,
  });
  const cuda = values.cuda as "auto" | "on" | "off";
  if (!["auto", "on", "off"].includes(cuda)) throw new UsageError("--cuda must be auto, on or off");
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1))
    throw new UsageError("--jobs must be a positive integer");
  try {
    const result = await buildLlamaServer({
      cuda,
      native: !values["no-native"],
      jobs,
      force: values.force,
      cacheDir: values["cache-dir"],
    });
    if (!result.built) process.stderr.write("llama-server is already built (cached); --force rebuilds it.\n");
    write(result.binary);
    return 0;
  } catch (err) {
    if (err instanceof BuildError || err instanceof ToolchainError) {
      process.stderr.write(`switchboard: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
