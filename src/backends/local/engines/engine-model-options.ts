import type { GpuMode } from "./in-process/llama-instance.js";

/** How a model is loaded and its slots scheduled, whichever engine runs it. */
export interface EngineModelOptions {
  /** Where the GGUF file is; resolved at load time (it may need a download first). */
  modelPath: () => Promise<string>;
  /** Tokens per slot; undefined = the model's training context, capped at contextSizeCap. */
  contextSize?: number;
  /** engines.default_context_cap: a large trained context would allocate gigabytes of KV cache per slot. */
  contextSizeCap: number;
  /** engines.gpu (for a supervised engine: its engine process's node-llama-cpp). */
  gpu: GpuMode;
  slots: number;
  threads: number;
  gpuLayers: "auto" | "max" | number;
  maxQueue: number;
  /** Slots batch generations leave free for interactive ones (SlotScheduler); default 1 with parallel > 1. */
  interactiveReserve?: number;
}
