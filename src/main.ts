#!/usr/bin/env -S node --max-semi-space-size=32
// The node flags of a server: SERVE_NODE_FLAGS in cli/node-flags.ts says why.
import { readFileSync } from "node:fs";
import { COMMANDS, helpFor, SUBCOMMANDS, wantsHelp } from "./cli/help.js";

/**
 * The command line. Each command's code is imported only when it runs, so `--help` and a
 * mistyped command answer at once without loading llama.cpp, a database driver or Fastify.
 */

type Print = (line: string) => void;
const print: Print = (line) => process.stdout.write(`${line}\n`);

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help") {
    process.stdout.write(helpFor([]));
    return 0;
  }
  if (command === "help") {
    process.stdout.write(helpFor(rest));
    return 0;
  }
  if (command === "-v" || command === "--version") {
    print(readVersion());
    return 0;
  }
  if (!COMMANDS.includes(command)) {
    process.stderr.write(`Unknown command '${command}'.\n\n${helpFor([])}`);
    return 2;
  }
  if (wantsHelp(rest)) {
    process.stdout.write(helpFor([command, ...rest]));
    return 0;
  }
  const subcommands = SUBCOMMANDS[command];
  if (subcommands && !subcommands.includes(rest[0] ?? "")) {
    const what =
      rest[0] === undefined ? `'${command}' needs a subcommand` : `Unknown ${command} command '${rest[0]}'`;
    process.stderr.write(`${what}: ${subcommands.join(", ")}.\n\n${helpFor([command])}`);
    return 2;
  }
  try {
    return await run(command, rest);
  } catch (err) {
    // node:util's message names the flag; say where the right ones are listed.
    if ((err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))
      (err as Error).message += ` (see: switchboard ${command} --help)`;
    throw err;
  }
}

async function run(command: string, args: string[]): Promise<number> {
  switch (command) {
    case "serve":
      return (await import("./cli/serve-command.js")).serveCommand(args);
    case "models":
      return (await import("./cli/models-command.js")).modelsCommand(args, print);
    case "make-model":
      return (await import("./cli/make-model-command.js")).makeModelCommand(args);
    case "engine":
      return (await import("./cli/engine-command.js")).runEngineCommand(args, print);
    case "keys":
    case "projects":
      return (await import("./cli/admin-commands.js")).runAdminCommand(command, args, print);
    case "migrate":
      return (await import("./cli/admin-commands.js")).migrateCommand(args, print);
    default:
      throw new Error(`no handler for command '${command}'`);
  }
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/** Mistakes in the call or the configuration exit 2 with their message; anything else exits 1. */
function isUsageMistake(err: unknown): boolean {
  const name = (err as Error).name;
  return (
    name === "ConfigError" ||
    name === "UsageError" ||
    ((err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") ?? false)
  );
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const known = isUsageMistake(err);
    process.stderr.write(`switchboard: ${(err as Error).message}\n`);
    if (!known && process.env.SWITCHBOARD_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(known ? 2 : 1);
  },
);
