import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { coerceString, schemaAt } from "./coerce.js";
import { readEnvSettings } from "./env-settings.js";
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

/** Where a value came from, by its dotted path (`models.0.parallel`): error messages name it. */
export type Origins = Map<string, string>;

/** Loads file < env < flags into one validated Config, or throws a ConfigError naming the field. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const origins: Origins = new Map();
  const raw: Record<string, unknown> = sources.file
    ? readConfigFile(sources.file, sources.fileRequired ?? true, env, origins)
    : {};
  for (const { setting, variable, value, ambient } of readEnvSettings(env)) {
    // Another program's variable (HF_TOKEN) only fills in what the file leaves unset.
    if (ambient && getPath(raw, setting.path) !== undefined) continue;
    setPath(raw, setting.path, value);
    origins.set(setting.path.join("."), `environment variable ${variable}`);
  }
  const flags = sources.flags ?? {};
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    if (key === "models") {
      const fromFile = (raw.models as unknown[] | undefined) ?? [];
      raw.models = [...fromFile, ...(value as unknown[])];
      for (const [i, model] of (value as { source?: unknown }[]).entries())
        origins.set(`models.${fromFile.length + i}`, `--model ${String(model.source)}`);
    } else {
      raw[key] = value;
      origins.set(key, "the command line");
    }
  }
  return validateConfig(raw, origins);
}

export function validateConfig(raw: unknown, origins: Origins = new Map()): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success)
    throw new ConfigError(`Invalid configuration:\n${formatIssues(result.error, origins)}`);
  const config = result.data;
  checkModelIdsUnique(config, origins);
  return config;
}

/** A model given on the command line: its id is the file name without extension. */
export function modelFromSource(source: string): Record<string, unknown> {
  const file = basename(source.replace(/@[^/]*$/, ""));
  return { id: file.replace(/\.gguf$/i, "") || "model", source };
}

/** `ID=` before a source: letters or digits first, so `./a=b.gguf` and `/x=y.gguf` stay paths. */
const ID_PREFIX = /^([A-Za-z0-9][A-Za-z0-9._:/-]*)=(.+)$/s;

/**
 * A `--model` argument: `ID=SOURCE` names the model, a bare SOURCE is named after its file.
 * The split is at the first `=`, so a path with `=` in it is given as `ID=path`.
 */
export function modelFromArgument(argument: string): Record<string, unknown> {
  const named = ID_PREFIX.exec(argument);
  // hf:owner/repo/file.gguf has no `=`; an `hf:` prefix before one is still a source, not an id.
  if (named && !argument.startsWith("hf:")) return { id: named[1], source: named[2] };
  return modelFromSource(argument);
}

function readConfigFile(
  path: string,
  required: boolean,
  env: NodeJS.ProcessEnv,
  origins: Origins,
): Record<string, unknown> {
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
  return interpolateEnv(parsed, env, [], origins) as Record<string, unknown>;
}

/**
 * Replaces ${VAR} in string values so secrets can stay out of the file. It runs on the parsed
 * YAML, so a value can never change the file's structure; a string that had a substitution is
 * then read as the type the schema wants there (`parallel: ${PARALLEL}` is a number).
 */
function interpolateEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: (string | number)[],
  origins: Origins,
): unknown {
  if (typeof value === "string") {
    const variables: string[] = [];
    const text = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const v = env[name];
      if (v === undefined)
        throw new ConfigError(
          `Config field ${displayPath(path)} refers to unset environment variable ${name}`,
        );
      variables.push(name);
      return v;
    });
    if (variables.length === 0) return value;
    origins.set(path.join("."), variables.map((name) => `\${${name}}`).join(", "));
    const schema = schemaAt(path);
    return schema ? coerceString(schema, text, { lists: false }) : text;
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, [...path, i], origins));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, [...path, k], origins)]),
    );
  }
  return value;
}

/** `models[0].source`, as a user reads the file. */
function displayPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return "(root)";
  return path
    .map((step, i) => (typeof step === "number" ? `[${step}]` : i === 0 ? step : `.${step}`))
    .join("");
}

function getPath(target: Record<string, unknown>, path: readonly string[]): unknown {
  let current: unknown = target;
  for (const key of path) {
    if (!isPlainObject(current)) return undefined;
    current = current[key];
  }
  return current;
}

/** Sets a nested value, copying the objects on the way (a file's `engines:` keeps its other keys). */
function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let current = target;
  for (const key of path.slice(0, -1)) {
    const next = current[key];
    const copy = isPlainObject(next) ? { ...next } : {};
    current[key] = copy;
    current = copy;
  }
  current[path[path.length - 1] as string] = value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function formatIssues(error: z.ZodError, origins: Origins): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length ? issue.path.map(String).join(".") : "(root)";
      return `  - ${field}: ${issue.message}${originOf(issue.path, origins)}`;
    })
    .join("\n");
}

/** " (from SWITCHBOARD_PORT)" when the field (or the list or object it is in) came from outside the file. */
function originOf(path: readonly PropertyKey[], origins: Origins): string {
  for (let length = path.length; length > 0; length--) {
    const origin = origins.get(path.slice(0, length).map(String).join("."));
    if (origin) return ` (from ${origin})`;
  }
  return "";
}

function checkModelIdsUnique(config: Config, origins: Origins): void {
  const seen = new Set<string>();
  for (const [i, model] of config.models.entries()) {
    for (const name of [model.id, ...model.aliases]) {
      if (seen.has(name)) {
        // Two --model files of one name (./a/q.gguf and ./b/q.gguf) are the usual way here.
        const hint = origins.has(`models.${i}`)
          ? `; a --model is named after its file without .gguf: name it with --model ID=SOURCE`
          : "";
        throw new ConfigError(
          `Invalid configuration:\n  - models: the name '${name}' is used twice${originOf(["models", i], origins)}${hint}`,
        );
      }
      seen.add(name);
    }
  }
  const localIds = new Set(config.models.map((m) => m.id));
  for (const [i, model] of config.routed_models.entries()) {
    const at = `routed_models.${i}`;
    for (const name of [model.id, ...model.aliases]) {
      if (seen.has(name))
        throw new ConfigError(`Invalid configuration:\n  - ${at}: the name '${name}' is used twice`);
      seen.add(name);
    }
    const named = new Set<string>();
    for (const [j, deployment] of model.deployments.entries()) {
      if (deployment.provider === "local" && !localIds.has(deployment.model))
        throw new ConfigError(
          `Invalid configuration:\n  - ${at}.deployments.${j}.model: no local model under 'models' has the id '${deployment.model}'`,
        );
      // The name keys its circuit (shared through Redis), its metrics and its health report.
      if (deployment.name === undefined) continue;
      if (named.has(deployment.name))
        throw new ConfigError(
          `Invalid configuration:\n  - ${at}.deployments.${j}.name: another deployment of this model is also named '${deployment.name}'`,
        );
      named.add(deployment.name);
    }
  }
  for (const [i, model] of config.routed_models.entries()) {
    for (const [j, fallback] of model.fallbacks.entries()) {
      if (!seen.has(fallback) || fallback === model.id)
        throw new ConfigError(
          `Invalid configuration:\n  - routed_models.${i}.fallbacks.${j}: '${fallback}' is not another configured model`,
        );
    }
  }
}
