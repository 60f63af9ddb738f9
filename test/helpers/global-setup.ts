import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { makeModel } from "../../src/models/make-model.js";

declare module "vitest" {
  export interface ProvidedContext {
    tinyModelPath: string;
    /** The tiny random-weight embedding model (embed-tiny preset). */
    embedModelPath: string;
    /** The tiny model with fill-in-the-middle tokens (its vocabulary's last three ids). */
    fimModelPath: string;
  }
}

/** The tiny random-weight models the server tests load (chat, embeddings), generated once per machine. */
export default async function setup(project: TestProject): Promise<void> {
  const dir = join(process.cwd(), "node_modules", ".cache", "switchboard-test");
  await mkdir(dir, { recursive: true });
  const path = join(dir, "tiny-v1.gguf");
  if (!existsSync(path)) await makeModel({ preset: "tiny", out: path, seed: 7 });
  project.provide("tinyModelPath", path);
  const embedPath = join(dir, "embed-tiny-v1.gguf");
  if (!existsSync(embedPath)) await makeModel({ preset: "embed-tiny", out: embedPath, seed: 7 });
  project.provide("embedModelPath", embedPath);
  const fimPath = join(dir, "tiny-fim-v1.gguf");
  if (!existsSync(fimPath)) await makeModel({ preset: "tiny", out: fimPath, seed: 7, fim: true });
  project.provide("fimModelPath", fimPath);
}
