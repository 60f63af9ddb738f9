import type { Llama } from "node-llama-cpp";
import type { Logger } from "pino";

/** engines.gpu: `off` keeps node-llama-cpp on the CPU. */
export type GpuMode = "auto" | "off";

let shared: { gpu: GpuMode; llama: Promise<Llama> } | undefined;

/**
 * One llama.cpp binding per process, shared by every model. Prebuilt binaries only: a compile
 * at run time would need a toolchain the user may not have (and npm skips install scripts).
 * The GPU is auto-detected unless `gpu` is off; CPU is the fallback. Every caller passes the
 * same config value; a binding cannot change its GPU mode once loaded, so a different one is an error.
 *
 * node-llama-cpp is imported here, on first use, and nowhere else at module level in the server:
 * a server whose models all run in llama-server never loads it (tens of MiB of resident memory).
 */
export function sharedLlama(logger: Logger, gpu: GpuMode): Promise<Llama> {
  if (shared) {
    if (shared.gpu !== gpu)
      return Promise.reject(new Error(`llama.cpp is already loaded with gpu: ${shared.gpu}, not ${gpu}`));
    return shared.llama;
  }
  const llama = loadLlama(logger, gpu).catch((err) => {
    shared = undefined;
    throw err;
  });
  shared = { gpu, llama };
  return llama;
}

async function loadLlama(logger: Logger, gpu: GpuMode): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  return getLlama({
    build: "never",
    gpu: gpu === "off" ? false : "auto",
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (!text) return;
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
        logger.error({ engine: "llama.cpp" }, text);
      else logger.debug({ engine: "llama.cpp" }, text);
    },
  });
}
