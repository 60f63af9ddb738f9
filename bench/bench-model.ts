import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { type ModelPreset, makeModel, type WeightType } from "../src/models/make-model.js";
import { progress } from "./harness.js";

export const CACHE_DIR = resolve("node_modules", ".cache", "switchboard-bench");

/** The random-weight benchmark model, generated once per machine and reused (seed 1). */
export async function benchModel(preset: ModelPreset, weightType: WeightType): Promise<string> {
  // v1: bump when make-model's output changes shape, so a stale file is never reused.
  const path = join(CACHE_DIR, `${preset}-${weightType}-seed1-v1.gguf`);
  if (existsSync(path)) return path;
  progress(`generating ${preset} ${weightType} model into ${path}`);
  const { bytes } = await makeModel({ preset, out: path, weightType, seed: 1 });
  progress(`wrote ${(bytes / 1024 / 1024).toFixed(0)} MiB`);
  return path;
}
