import { z } from "zod";
import { modelIdSchema, pricingSchema, routedModelSchema, routerSchema } from "./routed-model-schema.js";

/**
 * The one source of truth for configuration. The YAML file, SWITCHBOARD_* environment variables
 * and CLI flags are merged into this shape (file < env < flags) and validated once at start-up.
 */

const modelId = modelIdSchema;

/** Local engines a model may name; `auto` picks the fastest available. */
export const LOCAL_ENGINES = ["auto", "llama-server", "runner", "in-process"] as const;
export type LocalEngineName = (typeof LOCAL_ENGINES)[number];

const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/** What a model serves: chat and text completions, or embeddings. */
export const MODEL_KINDS = ["chat", "embedding"] as const;

export const localModelSchema = z
  .object({
    id: modelId,
    /**
     * `chat` (default): chat and text completions. `embedding`: /v1/embeddings only (llama-server
     * runs it with --embeddings; in-process and the runner use an embedding context).
     */
    kind: z.enum(MODEL_KINDS).default("chat"),
    /**
     * Embedding models: how token states are pooled into one vector; default: the GGUF's own
     * (`<arch>.pooling_type`), else the last token. Only llama-server can pool other than the GGUF says.
     */
    pooling: z.enum(["mean", "cls", "last"]).optional(),
    /** Embedding models: scale every vector to unit length (L2), as OpenAI's are. */
    normalize: z.boolean().default(true),
    /**
     * Embedding models trained so that a prefix of the vector is an embedding too (Matryoshka):
     * requests may then ask for fewer `dimensions` (truncated, then renormalised).
     */
    matryoshka: z.boolean().default(false),
    aliases: z.array(modelId).default([]),
    /** A path to a .gguf file, or hf:owner/repo/file.gguf[@revision] (downloaded into the data dir). */
    source: z.string().min(1),
    /** Expected sha256 of the file; checked after a download. */
    sha256: z
      .string()
      .regex(/^[a-f0-9]{64}$/i)
      .optional(),
    /** Tokens of context per sequence; default: the model's training context, capped at `engines.default_context_cap`. */
    context_size: z.number().int().min(64).max(1_048_576).optional(),
    /** Parallel sequences (slots) in the context. */
    parallel: z.number().int().min(1).max(64).default(4),
    /**
     * Compute threads; default 1, and 2 for the runner (1 on a one-core machine). In-process
     * node-llama-cpp on this kind of machine is fastest with 1: its token loop hops across libuv's
     * pool and ggml re-creates workers per token with more. The runner keeps that pool at one
     * thread, and 2 threads measured faster there (README, Engines).
     */
    threads: z.number().int().min(1).max(256).optional(),
    gpu_layers: z.union([z.literal("auto"), z.literal("max"), z.number().int().min(0)]).default("auto"),
    /**
     * Which engine runs the model (default auto): llama-server (llama.cpp's own server as a
     * supervised child process, the fastest) when its binary is available, else the runner
     * (node-llama-cpp in a supervised child Node process); in-process (node-llama-cpp in this
     * process) only when named.
     */
    engine: z.enum(LOCAL_ENGINES).optional(),
    /** Threads for prompt processing (batches); default: `threads`. Engine processes only. */
    batch_threads: z.number().int().min(1).max(256).optional(),
    /** Flash attention (engine processes only); default: the engine's own (auto). */
    flash_attention: z.enum(["auto", "on", "off"]).optional(),
    /** KV cache element type for keys and values (engine processes only); default f16. */
    kv_cache_type: z
      .enum(["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"])
      .optional(),
    /** More command-line flags for the engine process, passed as they are (llama-server only). */
    extra_args: z.array(z.string()).optional(),
    /** Stop an engine process after this long unused (it starts again on the next request); default: never. */
    idle_ttl_ms: z
      .number()
      .int()
      .min(1000)
      .max(7 * 24 * 3_600_000)
      .optional(),
    load: z.enum(["start", "on_demand"]).default("start"),
    /** Requests waiting for a slot beyond this are refused with 429 at once. */
    max_queue: z.number().int().min(0).max(100_000).default(64),
    /**
     * Sampling truncations applied when a request leaves them out (a request's own top_k, min_p or
     * repetition_penalty wins), as llama-server and Ollama ship defaults: they trade the model's
     * exact distribution for speed. Unset: none, every request samples from the whole distribution.
     */
    sampling_defaults: z
      .strictObject({
        top_k: z.number().int().min(0).max(1_000_000).optional(),
        min_p: z.number().min(0).max(1).optional(),
        repetition_penalty: z.number().gt(0).max(10).optional(),
      })
      .optional(),
    /**
     * Slots batch lines never take, kept free for interactive requests (which also go first when
     * slots are scarce); default 1 when parallel > 1, else 0. At most parallel − 1.
     */
    interactive_reserve: z.number().int().min(0).max(63).optional(),
    /** Operator override of the GGUF's chat template (jinja). Never taken from a request. */
    chat_template: z.string().optional(),
    owned_by: z.string().default("switchboard"),
    /** Prices for usage costs and cost budgets (USD per million tokens). */
    pricing: pricingSchema.optional(),
  })
  .strict()
  .superRefine((model, ctx) => {
    if (model.interactive_reserve !== undefined && model.interactive_reserve >= model.parallel) {
      ctx.addIssue({
        code: "custom",
        path: ["interactive_reserve"],
        message: `must be below parallel (${model.parallel}) so batch lines have a slot to run on`,
      });
    }
    if (model.kind === "embedding") return;
    for (const key of ["pooling", "matryoshka"] as const) {
      if (model[key] !== undefined && model[key] !== false) {
        ctx.addIssue({ code: "custom", path: [key], message: `${key} applies to models of kind: embedding` });
      }
    }
  });

export const configSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(8080),
    data_dir: z.string().min(1).default("./data"),
    log_level: logLevel.default("info"),
    /** auto: readable lines when stdout is a terminal, JSON lines otherwise (files, pipes, collectors). */
    log_format: z.enum(["auto", "json", "pretty"]).default("auto"),
    /** Largest request body accepted, in bytes; larger bodies get 413 before they are buffered. */
    body_limit_bytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 ** 3)
      .default(8 * 1024 * 1024),
    /** Largest request header block, in bytes; larger get 431. */
    header_limit_bytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024)
      .default(16 * 1024),
    /** How long SIGTERM waits for in-flight requests before cancelling them. */
    shutdown_grace_ms: z.number().int().min(0).max(600_000).default(10_000),
    /** Idle connections are closed after this; a slowloris client cannot hold sockets open. */
    request_timeout_ms: z.number().int().min(1000).max(3_600_000).default(600_000),
    headers_timeout_ms: z.number().int().min(1000).max(600_000).default(30_000),
    /** An idle kept-alive HTTP connection is closed after this long without a new request. */
    keep_alive_timeout_ms: z.number().int().min(1).max(600_000).default(5_000),
    /** A comment frame is sent on an event stream after this much silence, so proxies keep it open; 0 = never. */
    sse_keep_alive_ms: z.number().int().min(0).max(600_000).default(15_000),
    /** A streaming client that has not read what was sent for this long is cut off, freeing its slot. */
    sse_drain_timeout_ms: z.number().int().min(100).max(3_600_000).default(30_000),
    /** Highest `n` accepted on chat completions (the API allows up to 128). */
    max_n: z.number().int().min(1).max(128).default(128),
    models: z.array(localModelSchema).default([]),
    /** Models served by upstream providers and/or local models, through the router (README, Providers). */
    routed_models: z.array(routedModelSchema).default([]),
    /** How the router retries and breaks circuits, for every routed model. */
    router: routerSchema.prefault({}),
    /** Settings shared by every local engine, and where llama-server's binaries and builds are. */
    engines: z
      .object({
        /** `off` keeps node-llama-cpp (in-process, runner, vocabularies) on the CPU; `auto` uses a GPU it finds. */
        gpu: z.enum(["auto", "off"]).default("auto"),
        /**
         * A model without `context_size` gets its training context, capped at this: a large trained
         * context would allocate gigabytes of KV cache per slot.
         */
        default_context_cap: z.number().int().min(64).max(1_048_576).default(8192),
        /** First restart delay of a crashed engine process; it doubles per failure in a row. */
        restart_backoff_ms: z.number().int().min(1).max(3_600_000).default(500),
        /** The longest restart delay. */
        restart_backoff_max_ms: z.number().int().min(1).max(3_600_000).default(30_000),
        runner: z
          .object({
            /** Log level inside runner processes (their lines go into the server's log). */
            log_level: logLevel.default("info"),
          })
          .strict()
          .prefault({}),
        llama_server: z
          .object({
            /** Path of a llama-server binary; default: `llama-server` on PATH, else a `switchboard engine build`. */
            binary: z.string().min(1).optional(),
            /** Where `switchboard engine build` keeps builds; default ~/.cache/switchboard/llama-server. */
            cache_dir: z.string().min(1).optional(),
          })
          .strict()
          .default({}),
      })
      .strict()
      .refine((e) => e.restart_backoff_max_ms >= e.restart_backoff_ms, {
        message: "restart_backoff_max_ms must be at least restart_backoff_ms",
        path: ["restart_backoff_max_ms"],
      })
      // prefault: an absent `engines` is parsed as {}, so the defaults above are the only ones.
      .prefault({}),
    hf: z
      .object({
        base_url: z.url().default("https://huggingface.co"),
        token: z.string().optional(),
      })
      .strict()
      .prefault({}),
    /** Serve the built-in random-weight demo model when no model is configured. */
    demo_model: z.boolean().default(true),
    /** postgres://… for Postgres; otherwise a SQLite file (default: <data_dir>/switchboard.db). */
    database: z
      .string()
      .min(1)
      // Anything but postgres:// is taken as a file path, so `sqlite:///x.db` would make a folder
      // named "sqlite:"; a URL of another scheme is refused instead (drive letters are paths).
      .refine((value) => /^postgres(ql)?:\/\//i.test(value) || !/^[a-z][a-z0-9+.-]+:/i.test(value), {
        message: "use a postgres:// URL, or a file path for SQLite (not a sqlite: or file: URL)",
      })
      .optional(),
    /** redis://… to share rate limits, concurrency and budgets between instances. */
    redis: z
      .string()
      .regex(/^rediss?:\/\//, "use a redis:// or rediss:// URL")
      .optional(),
    /** Prefix of every Redis key, so several deployments can share one Redis. */
    redis_prefix: z
      .string()
      .regex(/^[A-Za-z0-9:_-]{1,64}$/)
      .default("sb:"),
    /**
     * A bootstrap admin key (use SWITCHBOARD_ADMIN_KEY). With it, or with any key in the database,
     * or when listening beyond loopback, every route but /health needs a key.
     */
    admin_key: z.string().min(20, "use at least 20 characters").optional(),
    /**
     * Host names (besides localhost, 127.0.0.0/8 and [::1]) that requests may be addressed to
     * while auth is off, e.g. the name a local reverse proxy forwards. Anything else gets 403:
     * this is what stops DNS rebinding.
     */
    allowed_hosts: z
      .array(
        z
          .string()
          .max(255)
          .regex(/^([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$/, "use a host name or IP address, without a port"),
      )
      .default([]),
    /**
     * Web origins (scheme://host[:port]) whose pages may call the API from a browser; default none.
     * Other origins get no CORS headers (their preflights a 405).
     */
    cors_origins: z
      .array(
        z.string().refine(isOrigin, "use an origin: scheme://host[:port], with no path or trailing slash"),
      )
      .default([]),
    /** Files and uploads: where their bytes go and how large they may be. */
    files: z
      .object({
        /** Largest file accepted by POST /v1/files (and largest upload), in bytes; larger get 413. Apart from body_limit_bytes. */
        max_bytes: z
          .number()
          .int()
          .min(1)
          .max(8 * 1024 ** 3)
          .default(512 * 1024 * 1024),
        /**
         * Where file bytes are kept: `filesystem` (DATA_DIR/files; temp file, fsync, rename),
         * `database` (chunked rows, so instances sharing Postgres serve each other's files), or
         * `auto`: database on Postgres, filesystem on SQLite.
         */
        store: z.enum(["auto", "filesystem", "database"]).default("auto"),
        /** How often expired files and uploads are looked for and removed, and expired vector stores' chunks. */
        sweep_interval_ms: z.number().int().min(100).max(86_400_000).default(60_000),
      })
      .strict()
      .prefault({}),
    /** The Batch API's workers (every instance runs them, sharing the database). */
    batches: z
      .object({
        /** Batch lines this instance runs at once; 0 = this instance runs none. */
        concurrency: z.number().int().min(0).max(1024).default(2),
        /** A claimed line is given back to the others if its worker has not renewed it for this long. */
        lease_ms: z.number().int().min(1000).max(3_600_000).default(60_000),
        /** How often an idle worker looks for work. */
        poll_interval_ms: z.number().int().min(10).max(600_000).default(1_000),
        /** Attempts at a line that meets a retryable error (overload, an engine restarting) before it is answered with that error. */
        max_attempts: z.number().int().min(1).max(100).default(5),
      })
      .strict()
      .prefault({}),
    /** Vector stores and file search: their models, their index and the ingestion workers. */
    vector_stores: z
      .object({
        /** The model that embeds new stores' chunks and queries; default: the first model of kind embedding. */
        embedding_model: z.string().min(1).max(256).optional(),
        /** A chat model that rewrites queries when a search asks (rewrite_query); without it that is a 400. */
        rewrite_model: z.string().min(1).max(256).optional(),
        /**
         * `auto`: sqlite-vec on SQLite where it loads, pgvector on Postgres where the server has it
         * (created at start where allowed), else an exact scan; `exact`: neither.
         */
        index: z.enum(["auto", "exact"]).default("auto"),
        /**
         * Bytes of stores' vectors this instance keeps in memory for exact search (least recently
         * searched stores dropped first); 0 = every search reads the vectors from the database.
         */
        cache_bytes: z
          .number()
          .int()
          .min(0)
          .max(64 * 1024 ** 3)
          .default(512 * 1024 * 1024),
        /** Files this instance ingests at once; 0 = this instance ingests none. */
        concurrency: z.number().int().min(0).max(64).default(1),
        /** A file being ingested is given to another worker if its own has not renewed it for this long. */
        lease_ms: z.number().int().min(1000).max(3_600_000).default(60_000),
        /** How often an idle worker looks for files to ingest. */
        poll_interval_ms: z.number().int().min(10).max(600_000).default(1_000),
        /** Tries at a file that meets a retryable error before it is marked failed. */
        max_attempts: z.number().int().min(1).max(100).default(5),
        /** Chunks per embedding call. */
        embed_batch_size: z.number().int().min(1).max(2048).default(32),
        /** Largest file that is indexed (it is read into memory); larger ones fail with invalid_file. */
        max_file_bytes: z
          .number()
          .int()
          .min(1)
          .max(1024 ** 3)
          .default(64 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    /** Serve the web console (playground, models, keys, usage) under /console. */
    console: z.boolean().default(true),
    /** How long a verified key is trusted before storage is asked again (revocation delay). */
    auth_cache_ttl_ms: z.number().int().min(0).max(600_000).default(5_000),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;

function isOrigin(value: string): boolean {
  try {
    return new URL(value).origin === value;
  } catch {
    return false;
  }
}
export type LocalModelConfig = z.infer<typeof localModelSchema>;
