import { execFile } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/** The first executable called `name` on PATH, like `which`. */
export function which(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface Toolchain {
  git: string;
  cmake: string;
  cc: string;
  cxx: string;
  /** Ninja when installed (better progress, faster no-op builds); otherwise cmake's default generator. */
  ninja: string | undefined;
  /** nvcc when the CUDA toolkit is installed. */
  nvcc: string | undefined;
  /** Whether an NVIDIA driver is present (a CUDA build without one cannot even start). */
  nvidiaDriver: boolean;
}

export class ToolchainError extends Error {
  override name = "ToolchainError";
}

const INSTALL_HINT =
  "On Debian/Ubuntu: sudo apt-get install -y cmake build-essential git (ninja-build optional); " +
  "on Fedora: sudo dnf install -y cmake gcc-c++ git; on macOS: xcode-select --install && brew install cmake.";

/** Finds the tools a build needs, or throws one error that names every missing one and how to get it. */
export function findToolchain(env: NodeJS.ProcessEnv = process.env): Toolchain {
  const cc = pick(env.CC, ["cc", "gcc", "clang"], env);
  const cxx = pick(env.CXX, ["c++", "g++", "clang++"], env);
  const git = which("git", env);
  const cmake = which("cmake", env);
  const missing: string[] = [];
  if (!cmake) missing.push("cmake (3.14 or newer)");
  if (!cxx) missing.push("a C++ compiler (g++ or clang++)");
  if (!cc) missing.push("a C compiler (gcc or clang)");
  if (!git) missing.push("git (to unpack the llama.cpp source bundle)");
  if (missing.length > 0 || !cmake || !cxx || !cc || !git) {
    throw new ToolchainError(`Building llama-server needs ${missing.join(", ")}. ${INSTALL_HINT}`);
  }
  const nvcc =
    which("nvcc", env) ?? ["/usr/local/cuda/bin/nvcc", "/opt/cuda/bin/nvcc"].find((p) => isExecutable(p));
  const nvidiaDriver =
    existsSync("/dev/nvidiactl") || existsSync("/proc/driver/nvidia/version") || !!which("nvidia-smi", env);
  return { git, cmake, cc, cxx, ninja: which("ninja", env), nvcc, nvidiaDriver };
}

function pick(fromEnv: string | undefined, names: string[], env: NodeJS.ProcessEnv): string | undefined {
  if (fromEnv) return which(fromEnv, env);
  for (const name of names) {
    const found = which(name, env);
    if (found) return found;
  }
  return undefined;
}

/** First line of `<tool> --version`, or undefined. */
export function toolVersion(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(path, ["--version"], { timeout: 10_000 }, (err, stdout) => {
      resolve(err ? undefined : stdout.split("\n")[0]?.trim());
    });
  });
}
