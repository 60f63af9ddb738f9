#!/usr/bin/env node
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runAdminCommand, UsageError } from "./cli/admin-commands.js";
import { ENGINE_USAGE, runEngineCommand } from "./cli/engine-command.js";
import { databaseUrl } from "./composition/build-access.js";
import { ConfigError, loadConfig, modelFromArgument } from "./config/load.js";
import type { Config } from "./config/schema.js";
import { type ModelPreset, makeModel, type WeightType } from "./models/make-model.js";
import { resolveModelFile } from "./models/resolve-model-file.js";
import { createLogger } from "./observability/logger.js";
import { startServer } from "./server.js";
import { openStorage } from "./storage/storage.js";

const USAGE = `switchboard — a self-hosted OpenAI-compatible API server

Usage:
  switchboard serve [options]            start the API server
  switchboard models list [options]      list configured models and where their weights are
  switchboard models pull [options]      download every configured hf: model now
  switchboard projects create --name NAME | list | archive ID
  switchboard keys create [--project ID] [--name N] [--admin] [--models a,b] [--expires-days D]
                          [--rpm N] [--tpm N] [--concurrency N]
  switchboard keys list [--project ID] | keys revoke [--project ID] KEY_ID
                                         manage projects and API keys (secrets are shown once)
  switchboard migrate [options]          apply database migrations and exit
${ENGINE_USAGE}
  switchboard make-model --preset tiny|smollm2-135m --out FILE.gguf [--weights f16|q8_0] [--seed N]
                                         write a random-weight GGUF model (for tests and benchmarks)

Options (serve, models):
  -c, --config FILE     YAML config file (default: ./switchboard.yaml if present; env SWITCHBOARD_CONFIG)
      --host HOST       address to bind (default 127.0.0.1)
  -p, --port PORT       port (default 8080)
      --data-dir DIR    where downloads and generated files live (default ./data)
      --log-level LEVEL fatal|error|warn|info|debug|trace|silent
  -m, --model [ID=]SOURCE
                        serve a model: a .gguf path or hf:owner/repo/file.gguf (repeatable); its
                        id is the file name without .gguf unless ID= names it (chat=./q.gguf)
      --database URL    postgres://… or a SQLite file (default: DATA_DIR/switchboard.db)
      --redis URL       redis://… to share limits between instances
  -h, --help            this text
  -v, --version         print the version
`;

const SERVE_OPTIONS = {
  config: { type: "string", short: "c" },
  host: { type: "string" },
  port: { type: "string", short: "p" },
  "data-dir": { type: "string" },
  "log-level": { type: "string" },
  model: { type: "string", short: "m", multiple: true },
  database: { type: "string" },
  redis: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === "-v" || command === "--version") {
    process.stdout.write(`${readVersion()}\n`);
    return 0;
  }
  switch (command) {
    case "serve":
      return serve(rest);
    case "models":
      return models(rest);
    case "make-model":
      return makeModelCommand(rest);
    case "engine":
      return runEngineCommand(rest, configFromArgs, (line) => process.stdout.write(`${line}\n`));
    case "keys":
    case "projects":
      return runAdminCommand(command, rest, configFromArgs, (line) => process.stdout.write(`${line}\n`));
    case "migrate": {
      const config = configFromArgs(rest);
      const storage = await openStorage({ url: databaseUrl(config) });
      await storage.close();
      process.stdout.write(`migrations applied (${storage.database.dialect})\n`);
      return 0;
    }
    default:
      process.stderr.write(`Unknown command '${command}'.\n\n${USAGE}`);
      return 2;
  }
}

function configFromArgs(args: string[]): Config {
  const { values } = parseArgs({ args, options: SERVE_OPTIONS, allowPositionals: false, strict: true });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const file = values.config ?? process.env.SWITCHBOARD_CONFIG;
  const flags: Record<string, unknown> = {
    host: values.host,
    port: values.port === undefined ? undefined : Number(values.port),
    data_dir: values["data-dir"],
    log_level: values["log-level"],
    models: values.model?.map(modelFromArgument),
    database: values.database,
    redis: values.redis,
  };
  return loadConfig({
    file: file ?? (existsSync("switchboard.yaml") ? "switchboard.yaml" : undefined),
    fileRequired: file !== undefined,
    flags,
  });
}

async function serve(args: string[]): Promise<number> {
  const config = configFromArgs(args);
  const logger = createLogger(config.log_level);
  const server = await startServer(config, { logger });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      logger.info({ signal, graceMs: config.shutdown_grace_ms }, "shutting down");
      server.stop().then(resolve, (err) => {
        logger.error({ err }, "error during shutdown");
        resolve();
      });
    };
    process.once("SIGTERM", () => onSignal("SIGTERM"));
    process.once("SIGINT", () => onSignal("SIGINT"));
  });
  logger.info("stopped");
  return 0;
}

async function models(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const config = configFromArgs(rest);
  const logger = createLogger(config.log_level === "info" ? "warn" : config.log_level);
  if (sub === "list") {
    if (config.models.length === 0)
      process.stdout.write("No models configured (serve uses the built-in demo model).\n");
    for (const m of config.models) {
      process.stdout.write(
        `${m.id}${m.aliases.length ? ` (aliases: ${m.aliases.join(", ")})` : ""}\t${m.source}\n`,
      );
    }
    return 0;
  }
  if (sub === "pull") {
    for (const m of config.models) {
      const path = await resolveModelFile(m, config, logger);
      process.stdout.write(`${m.id}\t${path}\n`);
    }
    return 0;
  }
  process.stderr.write(`Unknown models command '${sub ?? ""}': use 'list' or 'pull'.\n`);
  return 2;
}

async function makeModelCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      preset: { type: "string", default: "tiny" },
      out: { type: "string" },
      weights: { type: "string", default: "f16" },
      seed: { type: "string", default: "1" },
    },
    strict: true,
  });
  const preset = values.preset as ModelPreset;
  if (preset !== "tiny" && preset !== "smollm2-135m")
    throw new UsageError("--preset must be tiny or smollm2-135m");
  const weightType = values.weights as WeightType;
  if (weightType !== "f16" && weightType !== "q8_0") throw new UsageError("--weights must be f16 or q8_0");
  if (!values.out) throw new UsageError("--out FILE.gguf is required");
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new UsageError("--seed must be an integer");
  const result = await makeModel({ preset, out: values.out, weightType, seed });
  process.stdout.write(
    `wrote ${result.path} (${(result.bytes / 1024 / 1024).toFixed(1)} MiB, random weights)\n`,
  );
  return 0;
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const known =
      err instanceof ConfigError ||
      err instanceof UsageError ||
      (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`switchboard: ${(err as Error).message}\n`);
    if (!known && process.env.SWITCHBOARD_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(known ? 2 : 1);
  },
);
