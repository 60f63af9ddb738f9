import { z } from "zod";
import { coerceString, isListSchema, isScalarSchema, unwrapSchema } from "./coerce.js";
import { configSchema } from "./schema.js";

/**
 * The environment variables that set configuration, derived from the schema: every scalar or
 * list setting, at the top level and inside nested objects, is `SWITCHBOARD_` + its path in
 * upper case joined by `_` (`engines.llama_server.cache_dir` →
 * `SWITCHBOARD_ENGINES_LLAMA_SERVER_CACHE_DIR`). A setting added to the schema can be set from the
 * environment without touching this file. Lists of objects (`models`) come from the file and
 * flags only.
 */

export interface EnvSetting {
  /** Where the value goes in the config, e.g. ["engines", "gpu"]. */
  readonly path: readonly string[];
  /** The derived name, e.g. SWITCHBOARD_ENGINES_GPU. */
  readonly name: string;
  /** Names that worked before the names were derived; the derived name wins when both are set. */
  readonly legacyNames: readonly string[];
  /** Other programs' variables, used only when neither the file nor a SWITCHBOARD_* variable gives a value. */
  readonly ambientNames: readonly string[];
  readonly list: boolean;
  readonly schema: z.ZodType;
}

/** Names from before the names were derived, by the setting they set. */
const LEGACY_NAMES: Readonly<Record<string, readonly string[]>> = {
  "engines.llama_server.cache_dir": ["SWITCHBOARD_LLAMA_SERVER_CACHE_DIR"],
  "engines.gpu": ["SWITCHBOARD_GPU"],
  "engines.runner.log_level": ["SWITCHBOARD_RUNNER_LOG_LEVEL"],
};

/** Variables other tools use for the same thing, by the setting they fill in. */
const AMBIENT_NAMES: Readonly<Record<string, readonly string[]>> = {
  "hf.token": ["HF_TOKEN"],
};

export const ENV_PREFIX = "SWITCHBOARD_";

export function envName(path: readonly string[]): string {
  return `${ENV_PREFIX}${path.join("_").toUpperCase()}`;
}

/** Every setting the environment can give, in schema order. */
export function deriveEnvSettings(root: z.ZodType = configSchema): EnvSetting[] {
  const settings: EnvSetting[] = [];
  const visit = (schema: z.ZodType, path: string[]) => {
    const inner = unwrapSchema(schema);
    if (path.length > 0 && (isScalarSchema(inner) || isListSchema(inner))) {
      const key = path.join(".");
      settings.push({
        path,
        name: envName(path),
        legacyNames: LEGACY_NAMES[key] ?? [],
        ambientNames: AMBIENT_NAMES[key] ?? [],
        list: isListSchema(inner),
        schema,
      });
      return;
    }
    if (inner instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>))
        visit(child, [...path, key]);
    }
    // Anything else (lists of objects such as `models`) is for the file and flags only.
  };
  visit(root, []);
  checkNames(settings);
  return settings;
}

/** Two settings with one name, or an old name for a setting that is gone, is a bug in the schema or the tables. */
function checkNames(settings: readonly EnvSetting[]): void {
  const seen = new Map<string, string>();
  const paths = new Set(settings.map((s) => s.path.join(".")));
  for (const setting of settings) {
    for (const name of [setting.name, ...setting.legacyNames, ...setting.ambientNames]) {
      const other = seen.get(name);
      if (other !== undefined)
        throw new Error(`environment variable ${name} would set both ${other} and ${setting.path.join(".")}`);
      seen.set(name, setting.path.join("."));
    }
  }
  for (const key of [...Object.keys(LEGACY_NAMES), ...Object.keys(AMBIENT_NAMES)]) {
    if (!paths.has(key))
      throw new Error(`an environment variable is mapped to ${key}, which is not a setting`);
  }
}

export const ENV_SETTINGS: readonly EnvSetting[] = deriveEnvSettings();

export interface EnvValue {
  setting: EnvSetting;
  /** The variable the value came from. */
  variable: string;
  value: unknown;
  /** From another program's variable: only used where nothing else set the value. */
  ambient: boolean;
}

/** The settings the environment gives, coerced to their schema types (empty variables are unset). */
export function readEnvSettings(env: NodeJS.ProcessEnv): EnvValue[] {
  const values: EnvValue[] = [];
  for (const setting of ENV_SETTINGS) {
    const explicit = [setting.name, ...setting.legacyNames].find((name) => isSet(env[name]));
    const variable = explicit ?? setting.ambientNames.find((name) => isSet(env[name]));
    if (variable === undefined) continue;
    const value = coerceString(setting.schema, env[variable] as string, { lists: true });
    values.push({ setting, variable, value, ambient: explicit === undefined });
  }
  return values;
}

function isSet(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}
