import { spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, open, readFile, rename, rm, unlink, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { formatDuration } from "../models/progress-bar.js";
import {
  type BuildManifest,
  buildKey,
  type CachedBuild,
  MANIFEST,
  readCachedBuild,
  resolveCacheDir,
} from "./binary-cache.js";
import { nativeWouldUseAmx, x86FeatureFlags } from "./cpu-features.js";
import { readSourceBundle } from "./source-bundle.js";
import { findToolchain, type Toolchain, toolVersion } from "./toolchain.js";

export interface BuildOptions {
  /** Cache root; default ~/.cache/switchboard/llama-server. */
  cacheDir?: string;
  /** auto: when nvcc and an NVIDIA driver are both present. */
  cuda?: "auto" | "on" | "off";
  /** -march=native (GGML_NATIVE). Off for a binary that must run on other CPUs. */
  native?: boolean;
  /** Parallel compile jobs; default: every core. */
  jobs?: number;
  /** Rebuild even when the cache already has this build. */
  force?: boolean;
  /** Where progress goes (a terminal gets a redrawn bar, anything else a line per 10%). */
  progress?: NodeJS.WritableStream;
  env?: NodeJS.ProcessEnv;
  /** The llama directory of node-llama-cpp (tests point it elsewhere). */
  llamaDir?: string;
}

export interface BuildResult extends CachedBuild {
  /** False when the cache already held the build. */
  built: boolean;
}

export class BuildError extends Error {
  override name = "BuildError";
}

/**
 * The cmake options of a build. Only the llama-server target is built, statically, without the
 * web UI (and without fetching it), tests, examples, TLS or curl: nothing is downloaded.
 * Options the source does not know are dropped at configure time.
 */
export function buildFlags(
  cuda: boolean,
  native: boolean,
  cpuFeatures?: Record<string, string>,
): Record<string, string> {
  return {
    CMAKE_BUILD_TYPE: "Release",
    BUILD_SHARED_LIBS: "OFF",
    // Explicit CPU features replace -march=native where native would include an unusable AMX.
    GGML_NATIVE: native && !cpuFeatures ? "ON" : "OFF",
    ...(native ? cpuFeatures : undefined),
    GGML_CUDA: cuda ? "ON" : "OFF",
    ...(cuda ? { CMAKE_CUDA_ARCHITECTURES: "native" } : {}),
    LLAMA_BUILD_TESTS: "OFF",
    LLAMA_BUILD_EXAMPLES: "OFF",
    LLAMA_BUILD_TOOLS: "ON",
    LLAMA_BUILD_SERVER: "ON",
    LLAMA_BUILD_APP: "OFF",
    LLAMA_BUILD_UI: "OFF",
    LLAMA_USE_PREBUILT_UI: "OFF",
    LLAMA_BUILD_WEBUI: "OFF",
    LLAMA_OPENSSL: "OFF",
    LLAMA_CURL: "OFF",
    LLAMA_LLGUIDANCE: "OFF",
    GGML_CCACHE: "OFF",
  };
}

/** Options always passed (cmake's own, or ones any revision knows). */
const ALWAYS = new Set(["CMAKE_BUILD_TYPE", "BUILD_SHARED_LIBS", "CMAKE_CUDA_ARCHITECTURES", "GGML_NATIVE"]);

/**
 * `switchboard engine build`: compiles llama-server from the llama.cpp source node-llama-cpp
 * ships, into a cache directory keyed by the source revision and flags. Idempotent: when the
 * cache already has the build it returns at once.
 */
export async function buildLlamaServer(options: BuildOptions = {}): Promise<BuildResult> {
  const env = options.env ?? process.env;
  const out = options.progress ?? process.stderr;
  const bundle = await readSourceBundle(options.llamaDir);
  if (!bundle) {
    throw new BuildError(
      "node-llama-cpp's llama.cpp source bundle (node_modules/node-llama-cpp/llama/gitRelease.bundle) was not found. Reinstall dependencies (npm ci).",
    );
  }
  const cacheDir = resolveCacheDir(options.cacheDir, env);
  const toolchain = findToolchain(env);
  const cuda = wantsCuda(options.cuda ?? "auto", toolchain);
  const native = options.native ?? true;
  const avoidAmx = native && nativeWouldUseAmx();
  if (avoidAmx) {
    out.write(
      "This CPU has AMX, whose ggml kernels crash llama-server in this llama.cpp revision: building with the CPU's other features (AVX-512 and so on) instead of -march=native.\n",
    );
  }
  const flags = buildFlags(cuda, native, avoidAmx ? x86FeatureFlags() : undefined);
  const key = buildKey(bundle.revision, flags);
  const dir = join(cacheDir, key);

  const cached = await readCachedBuild(dir);
  if (cached && !options.force) return { ...cached, built: false };

  await mkdir(cacheDir, { recursive: true });
  const release = await acquireLock(join(cacheDir, `.${key}.lock`), out);
  try {
    // Another process may have finished this build while we waited for the lock.
    const done = await readCachedBuild(dir);
    if (done && !options.force) return { ...done, built: false };
    return { ...(await runBuild({ bundle, toolchain, flags, cuda, dir, options, out })), built: true };
  } finally {
    await release();
  }
}

function wantsCuda(mode: "auto" | "on" | "off", toolchain: Toolchain): boolean {
  if (mode === "off") return false;
  if (mode === "on") {
    if (!toolchain.nvcc) throw new BuildError("--cuda on needs the CUDA toolkit (nvcc) installed.");
    return true;
  }
  // A CUDA build links the driver library: without a driver the binary would not even start.
  return toolchain.nvcc !== undefined && toolchain.nvidiaDriver;
}

interface BuildPlan {
  bundle: { path: string; revision: string; release: string | undefined };
  toolchain: Toolchain;
  flags: Record<string, string>;
  cuda: boolean;
  dir: string;
  options: BuildOptions;
  out: NodeJS.WritableStream;
}

async function runBuild(plan: BuildPlan): Promise<CachedBuild> {
  const { bundle, toolchain, flags, dir, out } = plan;
  const started = performance.now();
  const work = `${dir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const logPath = join(work, "build.log");
  const log = createWriteStream(logPath);
  const jobs = plan.options.jobs ?? availableParallelism();
  const say = (line: string) => out.write(`${line}\n`);
  say(
    `Building llama-server from llama.cpp ${bundle.release ?? ""} (${bundle.revision.slice(0, 12)}), ` +
      `${plan.cuda ? "CUDA" : "CPU"}, ${jobs} jobs; this takes several minutes (4-7 on 2 cores).`,
  );
  try {
    const src = join(work, "src");
    const build = join(work, "build");
    await step("unpacking source", log, toolchain.git, [
      "-c",
      "advice.detachedHead=false",
      "clone",
      "--quiet",
      bundle.path,
      src,
    ]);
    const known = knownOptions(src);
    const defines = Object.entries(flags)
      .filter(([name]) => ALWAYS.has(name) || known.has(name))
      .map(([name, value]) => `-D${name}=${value}`);
    const generator = toolchain.ninja ? ["-G", "Ninja", `-DCMAKE_MAKE_PROGRAM=${toolchain.ninja}`] : [];
    say("configuring (cmake)...");
    await step("configuring", log, toolchain.cmake, [
      "-S",
      src,
      "-B",
      build,
      ...generator,
      `-DCMAKE_C_COMPILER=${toolchain.cc}`,
      `-DCMAKE_CXX_COMPILER=${toolchain.cxx}`,
      ...defines,
    ]);
    const bar = progressBar(out, "compiling llama-server");
    await step(
      "compiling",
      log,
      toolchain.cmake,
      ["--build", build, "--target", "llama-server", "--parallel", String(jobs)],
      (line) => {
        const match = /^\[\s*(\d+)\s*\/\s*(\d+)\]/.exec(line) ?? /^\[\s*(\d+)%\]/.exec(line);
        if (!match) return;
        const fraction = match[2] ? Number(match[1]) / Number(match[2]) : Number(match[1]) / 100;
        bar.update(fraction);
      },
    );
    bar.done();

    const built = join(build, "bin", "llama-server");
    if (!existsSync(built)) throw new BuildError(`the build finished but ${built} is missing`);
    const stage = `${dir}.tmp-${process.pid}-out`;
    await rm(stage, { recursive: true, force: true });
    await mkdir(join(stage, "bin"), { recursive: true });
    await copyFile(built, join(stage, "bin", "llama-server"));
    await chmod(join(stage, "bin", "llama-server"), 0o755);
    const manifest: BuildManifest = {
      revision: bundle.revision,
      release: bundle.release,
      flags,
      cuda: plan.cuda,
      binary: "bin/llama-server",
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round((performance.now() - started) / 1000),
      compiler: await toolVersion(toolchain.cxx),
    };
    await writeFile(join(stage, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(stage, dir);
    log.end();
    await rm(work, { recursive: true, force: true });
    say(`built in ${formatDuration(manifest.buildSeconds)}`);
    const result = await readCachedBuild(dir);
    if (!result) throw new BuildError(`the build in ${dir} is incomplete`);
    return result;
  } catch (err) {
    log.end();
    if (err instanceof StepError) {
      const tail = await tailOf(logPath, 40);
      throw new BuildError(
        `${err.message}. Last lines of the build log (${logPath}):\n${tail}\nThe full log is kept in ${work}.`,
      );
    }
    throw err;
  }
}

/** Option names declared anywhere in the source's CMake files (option(NAME ...) or set(NAME ... CACHE)). */
function knownOptions(src: string): Set<string> {
  const names = new Set<string>();
  for (const file of ["CMakeLists.txt", "ggml/CMakeLists.txt", "tools/ui/CMakeLists.txt"]) {
    const path = join(src, file);
    if (!existsSync(path)) continue;
    const text = readFileSync(path, "utf8");
    for (const m of text.matchAll(/\boption\s*\(\s*([A-Z0-9_]+)/g)) names.add(m[1] as string);
    for (const m of text.matchAll(/\bDEFINED\s+([A-Z0-9_]+)/g)) names.add(m[1] as string);
  }
  return names;
}

class StepError extends Error {}

/** Runs one build step with its output going to the log; `onLine` sees stdout lines as they come. */
function step(
  label: string,
  log: NodeJS.WritableStream,
  command: string,
  args: string[],
  onLine?: (line: string) => void,
): Promise<void> {
  log.write(`\n$ ${command} ${args.join(" ")}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let buffered = "";
    child.stdout.on("data", (chunk: Buffer) => {
      log.write(chunk);
      if (!onLine) return;
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    });
    child.stderr.on("data", (chunk: Buffer) => log.write(chunk));
    child.on("error", (err) => reject(new StepError(`${label} failed to start: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new StepError(`${label} failed (${signal ? `signal ${signal}` : `exit code ${code}`})`));
    });
  });
}

async function tailOf(path: string, lines: number): Promise<string> {
  try {
    return (await readFile(path, "utf8")).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

interface ProgressBar {
  update(fraction: number): void;
  done(): void;
}

/** A redrawn bar on a terminal; a line per 10% otherwise (CI logs stay short). */
function progressBar(out: NodeJS.WritableStream, label: string): ProgressBar {
  const tty = "isTTY" in out && out.isTTY === true;
  const started = performance.now();
  let lastStep = -1;
  let lastDraw = 0;
  let fraction = 0;
  const elapsed = () => formatDuration((performance.now() - started) / 1000);
  const draw = () => {
    const width = 30;
    const filled = Math.round(fraction * width);
    out.write(
      `\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${elapsed()}  `,
    );
  };
  return {
    update(value) {
      fraction = Math.max(fraction, Math.min(1, value));
      if (tty) {
        const now = performance.now();
        if (now - lastDraw >= 200) {
          lastDraw = now;
          draw();
        }
        return;
      }
      const step = Math.floor(fraction * 10);
      if (step > lastStep) {
        lastStep = step;
        out.write(`${label}: ${step * 10}% (${elapsed()})\n`);
      }
    },
    done() {
      fraction = 1;
      if (tty) {
        draw();
        out.write("\n");
      } else out.write(`${label}: done (${elapsed()})\n`);
    },
  };
}

/**
 * A lock file per build key, so two builds of the same key (two CI jobs on one machine) do not
 * race: the second waits, then finds the first one's result in the cache. A lock whose owner is
 * gone is taken over.
 */
async function acquireLock(path: string, out: NodeJS.WritableStream): Promise<() => Promise<void>> {
  let announced = false;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return async () => {
        await unlink(path).catch(() => {});
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number((await readFile(path, "utf8").catch(() => "")).trim());
    if (!Number.isInteger(owner) || owner <= 0 || !isAlive(owner)) {
      await unlink(path).catch(() => {});
      continue;
    }
    if (!announced) {
      out.write(`another build (pid ${owner}) is building the same llama-server; waiting for it...\n`);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
