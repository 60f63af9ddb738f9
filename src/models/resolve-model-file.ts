import { resolve } from "node:path";
import type { Logger } from "pino";
import type { Config, LocalModelConfig } from "../config/schema.js";
import { downloadModel } from "./download.js";
import { describeHfSource, hfCachePath, hfDownloadUrl, parseModelSource } from "./model-source.js";
import { createProgressReporter } from "./progress-bar.js";

/**
 * The local path of a configured model's weights, downloading hf: sources into the data dir
 * first (resumable, verified). Relative file paths are taken from the working directory.
 */
export async function resolveModelFile(
  model: LocalModelConfig,
  config: Pick<Config, "data_dir" | "hf">,
  logger: Logger,
  signal?: AbortSignal,
): Promise<string> {
  const source = parseModelSource(model.source);
  if (source.kind === "file") return resolve(source.path);
  const dest = hfCachePath(resolve(config.data_dir), source);
  const name = describeHfSource(source);
  const progress = createProgressReporter(process.stderr, `${model.id} (${name})`);
  let downloading = false;
  const result = await downloadModel({
    url: hfDownloadUrl(config.hf.base_url, source),
    dest,
    expectedSha256: model.sha256,
    token: config.hf.token,
    displayName: name,
    signal,
    onProgress: (p) => {
      downloading = true;
      progress.update(p);
    },
  });
  if (downloading) progress.done();
  logger.info(
    { model: model.id, bytes: result.bytes, sha256: result.sha256, resumed: result.resumed },
    "model weights ready",
  );
  return result.path;
}
