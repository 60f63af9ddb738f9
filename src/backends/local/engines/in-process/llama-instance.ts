import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import type { Logger } from "pino";

let shared: Promise<Llama> | undefined;

/**
 * One llama.cpp binding per process, shared by every model. Prebuilt binaries only: a compile
 * at run time would need a toolchain the user may not have (and npm skips install scripts).
 * The GPU is auto-detected; CPU is the fallback.
 */
export function sharedLlama(logger: Logger): Promise<Llama> {
  shared ??= getLlama({
    build: "never",
    gpu: process.env.SWITCHBOARD_GPU === "off" ? false : "auto",
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (!text) return;
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
        logger.error({ engine: "llama.cpp" }, text);
      else logger.debug({ engine: "llama.cpp" }, text);
    },
  }).catch((err) => {
    shared = undefined;
    throw err;
  });
  return shared;
}
