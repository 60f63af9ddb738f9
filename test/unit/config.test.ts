import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, modelFromSource, validateConfig } from "../../src/config/load.js";

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
      source: "./tiny.gguf",
      aliases: [],
      parallel: 4,
      gpu_layers: "auto",
      load: "start",
      max_queue: 64,
      owned_by: "switchboard",
    });
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
