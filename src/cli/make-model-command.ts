import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { MODEL_PRESET_NAMES, type ModelPreset, makeModel, type WeightType } from "../models/make-model.js";
import { UsageError } from "./usage-error.js";

/** `switchboard make-model`: a random-weight GGUF file for tests and benchmarks. */
export async function makeModelCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      preset: { type: "string", default: "tiny" },
      out: { type: "string" },
      weights: { type: "string", default: "f16" },
      seed: { type: "string", default: "1" },
      "chat-template": { type: "string" },
      fim: { type: "boolean", default: false },
    },
    strict: true,
  });
  const preset = values.preset as ModelPreset;
  if (!MODEL_PRESET_NAMES.includes(preset))
    throw new UsageError(`--preset must be one of ${MODEL_PRESET_NAMES.join(", ")}`);
  const weightType = values.weights as WeightType;
  if (weightType !== "f16" && weightType !== "q8_0") throw new UsageError("--weights must be f16 or q8_0");
  if (!values.out) throw new UsageError("--out FILE.gguf is required");
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new UsageError("--seed must be an integer");
  const templateFile = values["chat-template"];
  const chatTemplate = templateFile ? await readFile(templateFile, "utf8") : undefined;
  const result = await makeModel({
    preset,
    out: values.out,
    weightType,
    seed,
    chatTemplate,
    fim: values.fim,
  });
  process.stdout.write(
    `wrote ${result.path} (${(result.bytes / 1024 / 1024).toFixed(1)} MiB, random weights)\n`,
  );
  return 0;
}
