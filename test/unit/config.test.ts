import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, inject, it } from "vitest";
import { buildApp } from "../../src/app.js";
import { LocalEngineFactory } from "../../src/backends/local/engines/engine-factory.js";
import type { ProcessSupervisor } from "../../src/backends/local/engines/process-supervisor.js";
import { ENV_SETTINGS } from "../../src/config/env-settings.js";
import {
  ConfigError,
  loadConfig,
  modelFromArgument,
  modelFromSource,
  validateConfig,
} from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import { openEventStream } from "../../src/http/request-context.js";
import type { SseWriter } from "../../src/http/sse.js";
import { createLogger } from "../../src/observability/logger.js";
import { ModelRegistry } from "../../src/router/model-registry.js";

const dir = mkdtempSync(join(tmpdir(), "switchboard-config-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function yamlFile(text: string): string {
  const path = join(dir, `config-${++fileCount}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError thrown by fn (fails the test if it throws anything else or nothing). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("config defaults", () => {
  it("fills every default when nothing is given", () => {
    const config = loadConfig({ env: {} });
    expect(config).toMatchObject({
      host: "127.0.0.1",
      port: 8080,
      data_dir: "./data",
      log_level: "info",
      max_n: 128,
      models: [],
      demo_model: true,
      hf: { base_url: "https://huggingface.co" },
    });
    expect(config.hf.token).toBeUndefined();
  });

  it("fills the defaults of a model", () => {
    const config = validateConfig({ models: [{ id: "tiny", source: "./tiny.gguf" }] });
    expect(config.models[0]).toEqual({
      id: "tiny",
      kind: "chat",
      source: "./tiny.gguf",
      aliases: [],
      parallel: 4,
      gpu_layers: "auto",
      load: "start",
      max_queue: 64,
      owned_by: "switchboard",
      normalize: true,
      matryoshka: false,
    });
  });

  it("takes embedding models' settings, and refuses them on a chat model naming the field", () => {
    const config = validateConfig({
      models: [{ id: "embed", source: "./e.gguf", kind: "embedding", pooling: "cls", matryoshka: true }],
    });
    expect(config.models[0]).toMatchObject({
      kind: "embedding",
      pooling: "cls",
      normalize: true,
      matryoshka: true,
    });
    expect(() => validateConfig({ models: [{ id: "chat", source: "./c.gguf", pooling: "mean" }] })).toThrow(
      /models\.0\.pooling|models\[0\]\.pooling/,
    );
  });

  it("takes a model's interactive reserve below parallel, and refuses one that would leave batch work no slot", () => {
    const config = validateConfig({
      models: [{ id: "tiny", source: "./tiny.gguf", parallel: 3, interactive_reserve: 2 }],
    });
    expect(config.models[0]?.interactive_reserve).toBe(2);
    expect(() =>
      validateConfig({
        models: [{ id: "tiny", source: "./tiny.gguf", parallel: 2, interactive_reserve: 2 }],
      }),
    ).toThrow(/interactive_reserve/);
  });

  it("takes sampling_defaults on a local model only: a routed model or deployment naming them is refused", () => {
    const config = validateConfig({
      models: [{ id: "tiny", source: "./tiny.gguf", sampling_defaults: { top_k: 40, min_p: 0.05 } }],
    });
    expect(config.models[0]?.sampling_defaults).toEqual({ top_k: 40, min_p: 0.05 });
    const deployment = { provider: "openai-compatible", base_url: "http://127.0.0.1:9/v1", model: "m" };
    // Upstream providers apply their own defaults; a request's own top_k/min_p are passed on.
    expect(() =>
      validateConfig({
        routed_models: [{ id: "up", deployments: [deployment], sampling_defaults: { top_k: 40 } }],
      }),
    ).toThrow(/sampling_defaults/);
    expect(() =>
      validateConfig({
        routed_models: [{ id: "up", deployments: [{ ...deployment, sampling_defaults: { top_k: 40 } }] }],
      }),
    ).toThrow(/sampling_defaults/);
  });

  it("refuses an upstream base_url carrying a user or password (requests go to its origin, which would drop them)", () => {
    const deployment = { provider: "openai-compatible", model: "m" };
    for (const base_url of ["http://user:secret@127.0.0.1:9/v1", "https://token@api.example.com/v1"]) {
      expect(() =>
        validateConfig({ routed_models: [{ id: "up", deployments: [{ ...deployment, base_url }] }] }),
      ).toThrow(/api_key or headers/);
    }
    const config = validateConfig({
      routed_models: [
        { id: "up", deployments: [{ ...deployment, base_url: "https://api.example.com/v1/" }] },
      ],
    });
    expect(config.routed_models[0]?.deployments[0]).toMatchObject({ base_url: "https://api.example.com/v1" });
  });

  it("takes an upstream deployment's max_input_tokens (what vector store chunks are fitted to), a positive count", () => {
    const deployment = { provider: "openai-compatible", base_url: "http://127.0.0.1:9/v1", model: "bge" };
    const config = validateConfig({
      routed_models: [{ id: "bge", deployments: [{ ...deployment, max_input_tokens: 512 }] }],
    });
    expect(config.routed_models[0]?.deployments[0]).toMatchObject({ max_input_tokens: 512 });
    expect(() =>
      validateConfig({
        routed_models: [{ id: "bge", deployments: [{ ...deployment, max_input_tokens: 0 }] }],
      }),
    ).toThrow(/max_input_tokens/);
  });

  it("takes a postgres:// URL or a file path as the database, and refuses other URLs naming the field", () => {
    expect(validateConfig({ database: "postgres://u@127.0.0.1:5432/db" }).database).toBe(
      "postgres://u@127.0.0.1:5432/db",
    );
    expect(validateConfig({ database: "./data/sb.db" }).database).toBe("./data/sb.db");
    expect(validateConfig({ database: "C:\\data\\sb.db" }).database).toBe("C:\\data\\sb.db");
    for (const url of [
      "sqlite:///tmp/sb.db",
      "sqlite:/tmp/sb.db",
      "file:///tmp/sb.db",
      "mysql://root@localhost/db",
    ]) {
      expect(() => validateConfig({ database: url }), url).toThrow(
        /database.*postgres:\/\/ URL, or a file path/s,
      );
    }
  });

  it("takes vector_stores.cache_bytes from 0 to 64 GiB, and refuses anything else naming it", () => {
    expect(validateConfig({}).vector_stores.cache_bytes).toBe(512 * 1024 * 1024);
    expect(validateConfig({ vector_stores: { cache_bytes: 0 } }).vector_stores.cache_bytes).toBe(0);
    for (const bad of [-1, 1.5, 64 * 1024 ** 3 + 1, "lots"]) {
      expect(() => validateConfig({ vector_stores: { cache_bytes: bad } }), String(bad)).toThrow(
        /cache_bytes/,
      );
    }
  });

  it("an empty or missing optional file means defaults", () => {
    expect(loadConfig({ file: yamlFile(""), env: {} }).port).toBe(8080);
    expect(loadConfig({ file: join(dir, "absent.yaml"), fileRequired: false, env: {} }).port).toBe(8080);
  });
});

describe("config sources", () => {
  it("file < SWITCHBOARD_* env < flags", () => {
    const file = yamlFile("host: 0.0.0.0\nport: 1000\ndata_dir: /srv/file\nlog_level: warn\n");
    const fileOnly = loadConfig({ file, env: {} });
    expect(fileOnly).toMatchObject({ host: "0.0.0.0", port: 1000, data_dir: "/srv/file", log_level: "warn" });

    const env = {
      SWITCHBOARD_PORT: "2000",
      SWITCHBOARD_DATA_DIR: "/srv/env",
      SWITCHBOARD_DEMO_MODEL: "false",
    };
    const withEnv = loadConfig({ file, env });
    expect(withEnv).toMatchObject({ host: "0.0.0.0", port: 2000, data_dir: "/srv/env", demo_model: false });

    const withFlags = loadConfig({ file, env, flags: { port: 3000, host: undefined } });
    expect(withFlags).toMatchObject({ host: "0.0.0.0", port: 3000, data_dir: "/srv/env", log_level: "warn" });
  });

  it("ignores empty environment variables", () => {
    expect(loadConfig({ env: { SWITCHBOARD_PORT: "" } }).port).toBe(8080);
  });

  it("keeps string settings as strings even when they look like numbers", () => {
    const config = loadConfig({ env: { SWITCHBOARD_DATA_DIR: "2024", SWITCHBOARD_HOST: "0" } });
    expect(config.data_dir).toBe("2024");
    expect(config.host).toBe("0");
  });

  it("models from flags are added to the file's models", () => {
    const file = yamlFile("models:\n  - id: a\n    source: ./a.gguf\n");
    const config = loadConfig({ file, env: {}, flags: { models: [modelFromSource("./b.gguf")] } });
    expect(config.models.map((m) => m.id)).toEqual(["a", "b"]);
  });

  it("takes the Hugging Face token from the environment; SWITCHBOARD_HF_TOKEN beats the file", () => {
    const file = yamlFile("hf:\n  token: from-file\n");
    expect(loadConfig({ env: { HF_TOKEN: "ambient" } }).hf.token).toBe("ambient");
    expect(loadConfig({ file, env: { HF_TOKEN: "ambient" } }).hf.token).toBe("from-file");
    expect(
      loadConfig({ file, env: { SWITCHBOARD_HF_TOKEN: "explicit", HF_TOKEN: "ambient" } }).hf.token,
    ).toBe("explicit");
    const base = loadConfig({ file, env: { SWITCHBOARD_HF_BASE_URL: "http://127.0.0.1:9999" } }).hf;
    expect(base).toEqual({ token: "from-file", base_url: "http://127.0.0.1:9999" });
  });

  it("interpolates ${VAR} in string values of the file", () => {
    const file = yamlFile(
      [
        "data_dir: ${DATA_ROOT}/switchboard",
        "hf:",
        "  token: ${MY_HF_TOKEN}",
        "models:",
        "  - id: m",
        "    source: ${MODELS}/m.gguf",
      ].join("\n"),
    );
    const config = loadConfig({
      file,
      env: { DATA_ROOT: "/var/lib", MY_HF_TOKEN: "hf_secret", MODELS: "/models" },
    });
    expect(config.data_dir).toBe("/var/lib/switchboard");
    expect(config.hf.token).toBe("hf_secret");
    expect(config.models[0]?.source).toBe("/models/m.gguf");
  });

  it("names the field and the variable when an interpolated variable is unset", () => {
    const file = yamlFile("models:\n  - id: m\n    source: ${MISSING_MODEL_DIR}/m.gguf\n");
    const error = configError(() => loadConfig({ file, env: {} }));
    expect(error.message).toContain("MISSING_MODEL_DIR");
    expect(error.message).toContain("models[0].source");
  });

  it("a required file that does not exist is a ConfigError", () => {
    const error = configError(() => loadConfig({ file: join(dir, "nope.yaml"), env: {} }));
    expect(error.message).toContain("nope.yaml");
  });

  it("invalid YAML and a non-mapping top level are ConfigErrors", () => {
    expect(configError(() => loadConfig({ file: yamlFile("port: [1, 2\n"), env: {} })).message).toMatch(
      /not valid YAML/,
    );
    expect(configError(() => loadConfig({ file: yamlFile("- a\n- b\n"), env: {} })).message).toMatch(
      /mapping/,
    );
  });
});

describe("environment variables come from the schema", () => {
  const names = () => Object.fromEntries(ENV_SETTINGS.map((s) => [s.path.join("."), s.name]));

  it("names every scalar and list setting SWITCHBOARD_ + its path, nested ones too", () => {
    expect(names()).toMatchObject({
      port: "SWITCHBOARD_PORT",
      auth_cache_ttl_ms: "SWITCHBOARD_AUTH_CACHE_TTL_MS",
      allowed_hosts: "SWITCHBOARD_ALLOWED_HOSTS",
      "engines.llama_server.cache_dir": "SWITCHBOARD_ENGINES_LLAMA_SERVER_CACHE_DIR",
      "engines.runner.log_level": "SWITCHBOARD_ENGINES_RUNNER_LOG_LEVEL",
      "hf.token": "SWITCHBOARD_HF_TOKEN",
      "hf.base_url": "SWITCHBOARD_HF_BASE_URL",
    });
  });

  it("are the ones README's configuration table lists, and the table lists no others", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8");
    const table = readme.slice(readme.indexOf("| Setting | Env | Default | Meaning |"));
    const rows = new Map<string, string>();
    for (const line of table.split("\n").slice(2)) {
      if (!line.startsWith("|")) break;
      const [, setting, env] = line.split("|").map((cell) => cell.trim());
      rows.set((setting ?? "").replaceAll("`", ""), env ?? "");
    }
    for (const setting of ENV_SETTINGS) {
      const env = rows.get(setting.path.join("."));
      expect(env, setting.path.join(".")).toBeDefined();
      const documented = [...(env ?? "").matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]);
      expect(documented, setting.path.join(".")).toEqual([
        setting.name,
        ...setting.legacyNames,
        ...setting.ambientNames,
      ]);
    }
    const settings = new Set(ENV_SETTINGS.map((s) => s.path.join(".")));
    expect([...rows.keys()].filter((key) => !settings.has(key))).toEqual(["models[]", "routed_models[]"]);
  });

  it("leaves the models to the file and flags", () => {
    expect(ENV_SETTINGS.some((s) => s.path[0] === "models")).toBe(false);
    expect(loadConfig({ env: { SWITCHBOARD_MODELS: "./a.gguf" } }).models).toEqual([]);
  });

  it("sets a setting the hand-written list had missed: SWITCHBOARD_AUTH_CACHE_TTL_MS", () => {
    expect(loadConfig({ env: {} }).auth_cache_ttl_ms).toBe(5_000);
    expect(loadConfig({ env: { SWITCHBOARD_AUTH_CACHE_TTL_MS: "250" } }).auth_cache_ttl_ms).toBe(250);
  });

  it("sets nested settings and keeps the file's other keys of that object", () => {
    const file = yamlFile("engines:\n  llama_server:\n    binary: /opt/llama-server\n");
    const config = loadConfig({
      file,
      env: {
        SWITCHBOARD_ENGINES_LLAMA_SERVER_CACHE_DIR: "/cache",
        SWITCHBOARD_ENGINES_RESTART_BACKOFF_MS: "250",
      },
    });
    expect(config.engines.llama_server).toEqual({ binary: "/opt/llama-server", cache_dir: "/cache" });
    expect(config.engines.restart_backoff_ms).toBe(250);
  });

  it("still takes the names that worked before; the derived name wins over them", () => {
    const legacy = loadConfig({
      env: {
        SWITCHBOARD_LLAMA_SERVER_CACHE_DIR: "/old-cache",
        SWITCHBOARD_GPU: "off",
        SWITCHBOARD_RUNNER_LOG_LEVEL: "debug",
      },
    });
    expect(legacy.engines).toMatchObject({
      gpu: "off",
      runner: { log_level: "debug" },
      llama_server: { cache_dir: "/old-cache" },
    });
    const both = loadConfig({
      env: {
        SWITCHBOARD_LLAMA_SERVER_CACHE_DIR: "/old-cache",
        SWITCHBOARD_ENGINES_LLAMA_SERVER_CACHE_DIR: "/new-cache",
      },
    });
    expect(both.engines.llama_server.cache_dir).toBe("/new-cache");
  });

  it("coerces by the setting's type, not by how the value looks", () => {
    const config = loadConfig({
      env: {
        SWITCHBOARD_DATA_DIR: "2024",
        SWITCHBOARD_REDIS_PREFIX: "1:",
        SWITCHBOARD_ADMIN_KEY: "12345678901234567890",
        SWITCHBOARD_PORT: " 9000 ",
        SWITCHBOARD_DEMO_MODEL: "0",
        SWITCHBOARD_LOG_LEVEL: "warn",
        SWITCHBOARD_ALLOWED_HOSTS: "proxy.local, 10.0.0.1,,",
        SWITCHBOARD_ENGINES_DEFAULT_CONTEXT_CAP: "4096",
      },
    });
    expect(config).toMatchObject({
      data_dir: "2024",
      redis_prefix: "1:",
      admin_key: "12345678901234567890",
      port: 9000,
      demo_model: false,
      log_level: "warn",
      allowed_hosts: ["proxy.local", "10.0.0.1"],
      engines: { default_context_cap: 4096 },
    });
    expect(loadConfig({ env: { SWITCHBOARD_DEMO_MODEL: "TRUE" } }).demo_model).toBe(true);
  });

  it("refuses a value that does not fit, naming the field and the variable", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ SWITCHBOARD_AUTH_CACHE_TTL_MS: "5s" }, /- auth_cache_ttl_ms: .*SWITCHBOARD_AUTH_CACHE_TTL_MS/],
      [{ SWITCHBOARD_DEMO_MODEL: "maybe" }, /- demo_model: .*SWITCHBOARD_DEMO_MODEL/],
      [{ SWITCHBOARD_ENGINES_GPU: "on" }, /- engines\.gpu: .*SWITCHBOARD_ENGINES_GPU/],
      [{ SWITCHBOARD_GPU: "on" }, /- engines\.gpu: .*SWITCHBOARD_GPU\b/],
      [
        { SWITCHBOARD_SSE_DRAIN_TIMEOUT_MS: "0x10" },
        /- sse_drain_timeout_ms: .*SWITCHBOARD_SSE_DRAIN_TIMEOUT_MS/,
      ],
      [{ SWITCHBOARD_ALLOWED_HOSTS: "ok.local,bad:80" }, /- allowed_hosts\.1: .*SWITCHBOARD_ALLOWED_HOSTS/],
      [
        {
          SWITCHBOARD_ENGINES_RESTART_BACKOFF_MS: "2000",
          SWITCHBOARD_ENGINES_RESTART_BACKOFF_MAX_MS: "1000",
        },
        /- engines\.restart_backoff_max_ms: /,
      ],
    ];
    for (const [env, message] of cases)
      expect(configError(() => loadConfig({ env })).message).toMatch(message);
  });

  it("never prints the value itself (it may be a secret)", () => {
    const error = configError(() => loadConfig({ env: { SWITCHBOARD_ADMIN_KEY: "short-secret" } }));
    expect(error.message).toMatch(/- admin_key: .*SWITCHBOARD_ADMIN_KEY/);
    expect(error.message).not.toContain("short-secret");
  });
});

describe("${VAR} in the file", () => {
  it("works in numeric and boolean fields: the substituted string is read as the field's type", () => {
    const file = yamlFile(
      [
        "port: ${PORT}",
        "demo_model: ${DEMO}",
        "engines:",
        "  restart_backoff_ms: ${BACKOFF}",
        "models:",
        "  - id: m",
        "    source: m.gguf",
        "    parallel: ${PARALLEL}",
        "    gpu_layers: ${GPU_LAYERS}",
        "    context_size: ${CTX}",
      ].join("\n"),
    );
    const config = loadConfig({
      file,
      env: { PORT: "8081", DEMO: "false", BACKOFF: "100", PARALLEL: "8", GPU_LAYERS: "20", CTX: "2048" },
    });
    expect(config).toMatchObject({ port: 8081, demo_model: false, engines: { restart_backoff_ms: 100 } });
    expect(config.models[0]).toMatchObject({ parallel: 8, gpu_layers: 20, context_size: 2048 });
    const named = loadConfig({
      file,
      env: { PORT: "8081", DEMO: "true", BACKOFF: "100", PARALLEL: "8", GPU_LAYERS: "max", CTX: "2048" },
    });
    expect(named.models[0]?.gpu_layers).toBe("max");
    expect(named.demo_model).toBe(true);
  });

  it("keeps string fields strings, and a list stays one value (substitution cannot change the structure)", () => {
    const file = yamlFile("data_dir: ${DIR}\nallowed_hosts:\n  - ${HOST}\ncors_origins: ${ORIGINS}\n");
    const config = () =>
      loadConfig({ file, env: { DIR: "2024", HOST: "a.local", ORIGINS: "https://a.example" } });
    expect(configError(config).message).toMatch(/- cors_origins: .*\$\{ORIGINS\}/);
    const ok = loadConfig({
      file: yamlFile("data_dir: ${DIR}\nallowed_hosts:\n  - ${HOST}\n"),
      env: { DIR: "2024", HOST: "a.local" },
    });
    expect(ok.data_dir).toBe("2024");
    expect(ok.allowed_hosts).toEqual(["a.local"]);
  });

  it("refuses an invalid substituted value, naming the field and the variable", () => {
    const file = yamlFile("models:\n  - id: m\n    source: m.gguf\n    parallel: ${PARALLEL}\n");
    const many = configError(() => loadConfig({ file, env: { PARALLEL: "many" } }));
    expect(many.message).toMatch(/- models\.0\.parallel: .*expected number.*\$\{PARALLEL\}/);
    const zero = configError(() => loadConfig({ file, env: { PARALLEL: "0" } }));
    expect(zero.message).toMatch(/- models\.0\.parallel: .*\$\{PARALLEL\}/);
    const flag = configError(() =>
      loadConfig({ file: yamlFile("demo_model: ${DEMO}\n"), env: { DEMO: "yes please" } }),
    );
    expect(flag.message).toMatch(/- demo_model: .*expected boolean.*\$\{DEMO\}/);
  });

  it("a quoted number written in the file is still a string (only substitutions are converted)", () => {
    expect(configError(() => loadConfig({ file: yamlFile('port: "8080"\n'), env: {} })).message).toMatch(
      /- port: .*expected number/,
    );
  });
});

describe("config validation", () => {
  it("an invalid value names the field", () => {
    expect(configError(() => validateConfig({ port: 70000 })).message).toMatch(/^\s+- port: /m);
    expect(configError(() => validateConfig({ port: "http" })).message).toMatch(/- port: /);
    expect(configError(() => loadConfig({ env: { SWITCHBOARD_PORT: "eighty" } })).message).toMatch(
      /- port: /,
    );
    expect(configError(() => validateConfig({ log_level: "loud" })).message).toMatch(/- log_level: /);
    const parallel = configError(() =>
      validateConfig({ models: [{ id: "m", source: "m.gguf", parallel: 0 }] }),
    );
    expect(parallel.message).toMatch(/- models\.0\.parallel: /);
    const id = configError(() => validateConfig({ models: [{ id: "-bad id", source: "m.gguf" }] }));
    expect(id.message).toMatch(/- models\.0\.id: /);
  });

  it("reads a wrong value in the file the same way", () => {
    const file = yamlFile("models:\n  - id: m\n    source: m.gguf\n    threads: many\n");
    expect(configError(() => loadConfig({ file, env: {} })).message).toMatch(/- models\.0\.threads: /);
  });

  it("rejects unknown keys at every level", () => {
    expect(configError(() => validateConfig({ prot: 80 })).message).toContain("prot");
    const model = configError(() => validateConfig({ models: [{ id: "m", source: "m.gguf", gpu: true }] }));
    expect(model.message).toContain("models.0");
    expect(model.message).toContain("gpu");
    expect(configError(() => validateConfig({ hf: { tokn: "x" } })).message).toContain("tokn");
  });

  it("rejects a model name used twice, as id or alias", () => {
    const ids = configError(() =>
      validateConfig({
        models: [
          { id: "m", source: "a.gguf" },
          { id: "m", source: "b.gguf" },
        ],
      }),
    );
    expect(ids.message).toContain("'m'");
    const alias = configError(() =>
      validateConfig({
        models: [
          { id: "a", source: "a.gguf", aliases: ["gpt-4o"] },
          { id: "b", source: "b.gguf", aliases: ["gpt-4o"] },
        ],
      }),
    );
    expect(alias.message).toContain("'gpt-4o'");
    const selfAlias = configError(() =>
      validateConfig({ models: [{ id: "a", source: "a.gguf", aliases: ["a"] }] }),
    );
    expect(selfAlias.message).toContain("'a'");
    const aliasIsOtherId = configError(() =>
      validateConfig({
        models: [
          { id: "a", source: "a.gguf" },
          { id: "b", source: "b.gguf", aliases: ["a"] },
        ],
      }),
    );
    expect(aliasIsOtherId.message).toContain("'a'");
  });
});

describe("modelFromSource", () => {
  it("derives the id from the file name", () => {
    expect(modelFromSource("./models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")).toEqual({
      id: "Qwen2.5-0.5B-Instruct-Q4_K_M",
      source: "./models/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
    });
    expect(modelFromSource("/abs/path/Tiny.GGUF").id).toBe("Tiny");
    expect(modelFromSource("model.bin").id).toBe("model.bin");
  });

  it("drops the hf: revision and keeps the source as given", () => {
    const source = "hf:bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q8_0.gguf@main";
    expect(modelFromSource(source)).toEqual({ id: "SmolLM2-135M-Instruct-Q8_0", source });
  });

  it("yields a model the config accepts", () => {
    const config = validateConfig({ models: [modelFromSource("hf:owner/repo/file-Q4.gguf")] });
    expect(config.models[0]?.id).toBe("file-Q4");
  });
});

describe("modelFromArgument (--model [ID=]SOURCE)", () => {
  it("takes ID= before the source as the model's id, splitting at the first =", () => {
    expect(modelFromArgument("chat=./models/q.gguf")).toEqual({ id: "chat", source: "./models/q.gguf" });
    expect(modelFromArgument("m=./odd=name.gguf")).toEqual({ id: "m", source: "./odd=name.gguf" });
    expect(modelFromArgument("qwen=hf:Qwen/repo/q.gguf@main")).toEqual({
      id: "qwen",
      source: "hf:Qwen/repo/q.gguf@main",
    });
  });

  it("names a bare source after its file; a path that starts with . or / is never an id", () => {
    expect(modelFromArgument("./models/q.gguf")).toEqual({ id: "q", source: "./models/q.gguf" });
    expect(modelFromArgument("./a=b.gguf")).toEqual({ id: "a=b", source: "./a=b.gguf" });
    expect(modelFromArgument("/abs/x=y.gguf").source).toBe("/abs/x=y.gguf");
    expect(modelFromArgument("hf:o/r/f=1.gguf").source).toBe("hf:o/r/f=1.gguf");
  });

  it("says where a bad or repeated name came from", () => {
    const twice = configError(() =>
      loadConfig({ env: {}, flags: { models: ["./a/q.gguf", "./b/q.gguf"].map(modelFromArgument) } }),
    );
    expect(twice.message).toContain("the name 'q' is used twice (from --model ./b/q.gguf)");
    expect(twice.message).toContain("--model ID=SOURCE");
    const bad = configError(() =>
      loadConfig({ env: {}, flags: { models: [modelFromArgument("my model.gguf")] } }),
    );
    expect(bad.message).toMatch(/models\.0\.id: .*\(from --model my model\.gguf\)/);
  });
});

describe("timings and limits come from the config", () => {
  it("has today's values as defaults", () => {
    expect(loadConfig({ env: {} })).toMatchObject({
      keep_alive_timeout_ms: 5_000,
      sse_keep_alive_ms: 15_000,
      sse_drain_timeout_ms: 30_000,
      engines: {
        gpu: "auto",
        default_context_cap: 8192,
        restart_backoff_ms: 500,
        restart_backoff_max_ms: 30_000,
        runner: { log_level: "info" },
        llama_server: {},
      },
    });
  });

  /**
   * An app with one extra route that streams for `ms`: `quiet` sends nothing until [DONE] (room for
   * keep-alive comments), `firehose` sends 256 KiB events as fast as the client takes them.
   */
  function streamingApp(config: Config, mode: "quiet" | "firehose", ms: number) {
    const app = buildApp(config, { registry: new ModelRegistry(), logger: createLogger("silent") });
    const writers: SseWriter[] = [];
    app.fastify.get("/test-stream", async (request, reply) => {
      const sse = openEventStream(request, reply);
      writers.push(sse);
      reply.hijack();
      sse.open();
      const big = "x".repeat(256 * 1024);
      const until = Date.now() + ms;
      while (sse.isOpen && Date.now() < until) {
        if (mode === "firehose") await sse.send({ big });
        else await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await sse.done();
    });
    return { app, writers };
  }

  it("the SSE writer sends keep-alive comments at sse_keep_alive_ms", async () => {
    const config = loadConfig({ env: { SWITCHBOARD_SSE_KEEP_ALIVE_MS: "40" } });
    const { app } = streamingApp(config, "quiet", 300);
    const response = await app.fastify.inject({ method: "GET", url: "/test-stream" });
    await app.fastify.close();
    expect(response.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(response.body.match(/^: keep-alive$/gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(response.body).toMatch(/data: \[DONE\]\n\n$/);

    // The default (15 s) sends none in that time.
    const quiet = streamingApp(loadConfig({ env: {} }), "quiet", 300);
    const plain = await quiet.app.fastify.inject({ method: "GET", url: "/test-stream" });
    await quiet.app.fastify.close();
    expect(plain.body).not.toContain("keep-alive");
  });

  it("the SSE writer cuts off a client that stops reading after sse_drain_timeout_ms", async () => {
    const config = loadConfig({ env: { SWITCHBOARD_SSE_DRAIN_TIMEOUT_MS: "300", SWITCHBOARD_PORT: "0" } });
    const { app, writers } = streamingApp(config, "firehose", 60_000);
    const address = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
    const socket = connect(Number(new URL(address).port), "127.0.0.1");
    try {
      socket.write("GET /test-stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
      socket.pause(); // never read: the server's writes back up until the drain timeout
      const started = Date.now();
      while (writers.length === 0 || !writers[0]?.signal.aborted) {
        // Well before the default drain timeout (30 s): only the configured one can have cut it off.
        if (Date.now() - started > 20_000) throw new Error("the stream was never cut off");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(writers[0]?.signal.reason).toBeInstanceOf(Error);
      expect(String(writers[0]?.signal.reason)).toContain("client stopped reading");
    } finally {
      socket.destroy();
      await app.fastify.close();
    }
  });

  it("HTTP keep-alive follows keep_alive_timeout_ms", async () => {
    const app = buildApp(loadConfig({ env: { SWITCHBOARD_KEEP_ALIVE_TIMEOUT_MS: "1234" } }), {
      registry: new ModelRegistry(),
      logger: createLogger("silent"),
    });
    expect(app.fastify.server.keepAliveTimeout).toBe(1234);
    await app.fastify.close();
  });

  function factory(env: Record<string, string>) {
    const config = loadConfig({ env: { SWITCHBOARD_DATA_DIR: mkdtempSync(join(dir, "data-")), ...env } });
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    return new LocalEngineFactory(config, createLogger("info", sink));
  }
  const model = (extra: Record<string, unknown>) =>
    validateConfig({
      models: [
        { id: "m", source: inject("tinyModelPath"), parallel: 1, threads: 1, gpu_layers: 0, ...extra },
      ],
    }).models[0] as Config["models"][number];

  it("engine processes restart with the configured backoff", async () => {
    const engines = factory({
      SWITCHBOARD_ENGINES_RESTART_BACKOFF_MS: "50",
      SWITCHBOARD_ENGINES_RESTART_BACKOFF_MAX_MS: "400",
      // Any existing file will do: nothing is started here.
      SWITCHBOARD_ENGINES_LLAMA_SERVER_BINARY: process.execPath,
    });
    for (const engine of ["runner", "llama-server"]) {
      const created = await engines.create(model({ engine }), async () => inject("tinyModelPath"));
      expect(created.name).toBe(engine);
      const { supervisor } = created.engine as unknown as { supervisor: ProcessSupervisor };
      expect(supervisor.opts).toMatchObject({ backoffMs: 50, maxBackoffMs: 400 });
      await created.engine.close();
    }
  });

  it("a model without context_size gets its training context capped at engines.default_context_cap", async () => {
    // The tiny model is trained for 2048 tokens: the default cap (8192) leaves that, 256 caps it.
    const engines = factory({ SWITCHBOARD_ENGINES_DEFAULT_CONTEXT_CAP: "256" });
    for (const engine of ["in-process", "runner"]) {
      const { engine: local } = await engines.create(model({ engine }), async () => inject("tinyModelPath"));
      try {
        await local.load();
        expect(local.metadata().contextSize).toBe(256);
      } finally {
        await local.close();
      }
    }
    const uncapped = await factory({}).create(model({ engine: "in-process" }), async () =>
      inject("tinyModelPath"),
    );
    try {
      await uncapped.engine.load();
      expect(uncapped.engine.metadata().contextSize).toBe(2048);
    } finally {
      await uncapped.engine.close();
    }
  });
});
