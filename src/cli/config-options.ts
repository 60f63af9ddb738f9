import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadConfig, modelFromArgument } from "../config/load.js";
import type { Config } from "../config/schema.js";

/** The flags every command that loads the configuration takes (file < env < these). */
export const CONFIG_OPTIONS = {
  config: { type: "string", short: "c" },
  host: { type: "string" },
  port: { type: "string", short: "p" },
  "data-dir": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  model: { type: "string", short: "m", multiple: true },
  database: { type: "string" },
  redis: { type: "string" },
} as const;

/** The file that was read, and why that one: start-up logs it, so a stray ./switchboard.yaml is seen. */
export interface ConfigFile {
  /** Absolute path; undefined when no file was read. */
  path: string | undefined;
  /** "--config", "SWITCHBOARD_CONFIG" or "the working directory" (./switchboard.yaml). */
  from: string | undefined;
}

export interface LoadedConfig {
  config: Config;
  file: ConfigFile;
}

const DEFAULT_FILE = "switchboard.yaml";

/** Which config file the flags and environment name, or ./switchboard.yaml when it exists. */
export function chooseConfigFile(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): ConfigFile {
  if (flag !== undefined) return { path: resolve(flag), from: "--config" };
  if (env.SWITCHBOARD_CONFIG) return { path: resolve(env.SWITCHBOARD_CONFIG), from: "SWITCHBOARD_CONFIG" };
  if (existsSync(DEFAULT_FILE)) return { path: resolve(DEFAULT_FILE), from: "the working directory" };
  return { path: undefined, from: undefined };
}

/** Parses the config flags and loads file < env < flags; throws ConfigError naming a bad field. */
export function loadCliConfig(args: string[]): LoadedConfig {
  const { values } = parseArgs({ args, options: CONFIG_OPTIONS, allowPositionals: false, strict: true });
  const file = chooseConfigFile(values.config);
  const flags: Record<string, unknown> = {
    host: values.host,
    port: values.port === undefined ? undefined : Number(values.port),
    data_dir: values["data-dir"],
    log_level: values["log-level"],
    log_format: values["log-format"],
    models: values.model?.map(modelFromArgument),
    database: values.database,
    redis: values.redis,
  };
  const config = loadConfig({
    file: file.path,
    // A file named by --config or SWITCHBOARD_CONFIG must exist; the default one may not.
    fileRequired: file.from !== "the working directory",
    flags,
  });
  return { config, file };
}

/** One line for people: which config file this process runs with. */
export function describeConfigFile(file: ConfigFile): string {
  return file.path
    ? `config file: ${file.path} (from ${file.from})`
    : `no config file (no --config, no SWITCHBOARD_CONFIG, no ./${DEFAULT_FILE}): defaults, SWITCHBOARD_* environment variables and flags`;
}
