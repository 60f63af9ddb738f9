/** The settings of one model that become llama-server flags. */
export interface LlamaServerSettings {
  modelPath: string;
  /** Tokens per slot; llama-server's -c is the total, split over -np slots. */
  contextSize: number;
  slots: number;
  threads: number;
  batchThreads?: number;
  gpuLayers: "auto" | "max" | number;
  flashAttention?: "auto" | "on" | "off";
  kvCacheType?: string;
  extraArgs?: readonly string[];
  /** Embedding mode and its pooling (llama-server's --embeddings --pooling). */
  embedding?: { pooling: "mean" | "cls" | "last" };
}

/**
 * llama-server's command line: loopback only, the port the supervisor picked, no web UI, the
 * slot and monitoring endpoints on. The API key is not here: it goes through the environment
 * (LLAMA_API_KEY), since any local user can read a process's command line.
 */
export function llamaServerArgs(settings: LlamaServerSettings, port: number): string[] {
  const args = [
    "--model",
    settings.modelPath,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--parallel",
    String(settings.slots),
    "--ctx-size",
    String(settings.contextSize * settings.slots),
    "--threads",
    String(settings.threads),
    "--threads-batch",
    String(settings.batchThreads ?? settings.threads),
    "--n-gpu-layers",
    gpuLayers(settings.gpuLayers),
    "--no-webui",
    "--metrics",
    "--slots",
    // Switchboard never shifts context: a request that does not fit is refused before it starts.
    "--no-context-shift",
  ];
  if (settings.flashAttention) args.push("--flash-attn", settings.flashAttention);
  if (settings.kvCacheType)
    args.push("--cache-type-k", settings.kvCacheType, "--cache-type-v", settings.kvCacheType);
  if (settings.embedding) {
    // A non-causal model (BERT) must see a whole input in one micro-batch.
    const ubatch = Math.max(512, settings.contextSize);
    // --kv-unified: with llama-server's default per-slot KV streams, mean pooling over inputs of
    // different lengths evaluated in one batch gave vectors off by up to 0.12 in cosine from the
    // same inputs embedded alone (this llama.cpp revision, 4 slots); one unified cache does not.
    args.push(
      "--kv-unified",
      "--embeddings",
      "--pooling",
      settings.embedding.pooling,
      "--ubatch-size",
      String(ubatch),
      "--batch-size",
      String(Math.max(2048, ubatch)),
    );
  }
  if (settings.extraArgs) for (const arg of settings.extraArgs) args.push(arg);
  return args;
}

function gpuLayers(value: "auto" | "max" | number): string {
  if (value === "max") return "all";
  return String(value);
}

/**
 * The environment of a llama-server process: ours, minus llama.cpp's own LLAMA_ARG_* settings
 * (the config is the one place flags come from), plus the secret.
 */
export function llamaServerEnv(apiKey: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (key.startsWith("LLAMA_ARG_") || key === "LLAMA_API_KEY") continue;
    env[key] = value;
  }
  env.LLAMA_API_KEY = apiKey;
  return env;
}
