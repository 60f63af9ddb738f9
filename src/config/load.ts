import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { type Config, configSchema } from "./schema.js";

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface ConfigSources {
  /** Path of a YAML config file; missing path = no file (the default `switchboard.yaml` is optional). */
  file?: string;
  fileRequired?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Values from CLI flags, already in config shape (snake_case keys). */
  flags?: Record<string, unknown>;
}

/** Top-level scalar settings that SWITCHBOARD_<NAME> may set. */
const ENV_KEYS = [
  "host",
  "port",
  "data_dir",
  "log_level",
  "body_limit_bytes",
  "header_limit_bytes",
  "shutdown_grace_ms",
  "request_timeout_ms",
  "headers_timeout_ms",
  "max_n",
  "demo_model",
  "database",
  "redis",
  "redis_prefix",
  "admin_key",
  "allowed_hosts",
  "cors_origins",
] as const;

/** Lists, given in the environment as comma-separated values. */
const LIST_KEYS: ReadonlySet<string> = new Set(["allowed_hosts", "cors_origins"]);

/** Settings that are strings even when they look like numbers (a data dir named `2024`). */
const STRING_KEYS: ReadonlySet<string> = new Set([
  "host",
  "data_dir",
  "log_level",
  "database",
  "redis",
  "redis_prefix",
  "admin_key",
]);

/** Loads file < env < flags into one validated Config, or throws a ConfigError naming the field. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const raw: Record<string, unknown> = sources.file
    ? readConfigFile(sources.file, sources.fileRequired ?? true, env)
    : {};
  for (const key of ENV_KEYS) {
    const value = env[`SWITCHBOARD_${key.toUpperCase()}`];
    if (value === undefined || value === "") continue;
    if (LIST_KEYS.has(key)) raw[key] = splitList(value);
    else raw[key] = STRING_KEYS.has(key) ? value : coerceScalar(value);
  }
  // SWITCHBOARD_HF_TOKEN overrides the file like every SWITCHBOARD_* setting; the ambient
  // HF_TOKEN only fills in a token the file does not set.
  const hfToken = env.SWITCHBOARD_HF_TOKEN;
  const ambientToken = env.HF_TOKEN;
  const hfBase = env.SWITCHBOARD_HF_BASE_URL;
  if (hfToken || ambientToken || hfBase) {
    const hf = { ...(raw.hf as Record<string, unknown> | undefined) };
    if (hfToken) hf.token = hfToken;
    else if (ambientToken && hf.token === undefined) hf.token = ambientToken;
    if (hfBase) hf.base_url = hfBase;
    raw.hf = hf;
  }
  const flags = sources.flags ?? {};
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    if (key === "models") raw.models = [...((raw.models as unknown[]) ?? []), ...(value as unknown[])];
    else raw[key] = value;
  }
  return validateConfig(raw);
}

export function validateConfig(raw: unknown): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(`Invalid configuration:\n${formatIssues(result.error)}`);
  const config = result.data;
  checkModelIdsUnique(config);
  return config;
}

/** A model given on the command line: its id is the file name without extension. */
export function modelFromSource(source: string): Record<string, unknown> {
  const file = basename(source.replace(/@[^/]*$/, ""));
  return { id: file.replace(/\.gguf$/i, "") || "model", source };
}

function readConfigFile(path: string, required: boolean, env: NodeJS.ProcessEnv): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new ConfigError(`Cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`Config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`Config file ${path} must hold a mapping of settings at the top level`);
  }
  return interpolateEnv(parsed, env, "") as Record<string, unknown>;
}

/** Replaces ${VAR} in string values so secrets can stay out of the file. */
function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, path: string): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined)
        throw new ConfigError(
          `Config field ${path || "(root)"} refers to unset environment variable ${name}`,
        );
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, `${path}[${i}]`));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, path ? `${path}.${k}` : k)]),
    );
  }
  return value;
}

function splitList(value: string): string[] {
  return value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function coerceScalar(value: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (value === "true") return true;
  if (value === "false") return false;
  return value;
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length ? issue.path.map(String).join(".") : "(root)";
      return `  - ${field}: ${issue.message}`;
    })
    .join("\n");
}

function checkModelIdsUnique(config: Config): void {
  const seen = new Set<string>();
  for (const model of config.models) {
    for (const name of [model.id, ...model.aliases]) {
      if (seen.has(name))
        throw new ConfigError(`Invalid configuration:\n  - models: the name '${name}' is used twice`);
      seen.add(name);
    }
  }
}
