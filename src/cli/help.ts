/**
 * The help of every command and subcommand. `--help` (or `-h`, or `switchboard help CMD`) prints
 * the text of the deepest command named and exits 0; help never loads a model, a database or
 * the engine code, so it answers at once.
 */

const CONFIG_OPTIONS = `Config options (file < SWITCHBOARD_* environment < these flags):
  -c, --config FILE       YAML config file (default: ./switchboard.yaml if present; env SWITCHBOARD_CONFIG)
      --data-dir DIR      downloads, the demo model and the SQLite database (default ./data)
      --database URL      postgres://… or a SQLite file (default DATA_DIR/switchboard.db)
      --log-level LEVEL   fatal|error|warn|info|debug|trace|silent
      --log-format FMT    auto (pretty on a terminal, JSON otherwise) | json | pretty`;

const DATABASE_OPTIONS = `Which database (use the same as the server's \`serve\`):
  -c, --config FILE       YAML config file (default: ./switchboard.yaml if present; env SWITCHBOARD_CONFIG)
      --data-dir DIR      the SQLite database is DATA_DIR/switchboard.db (default ./data)
      --database URL      postgres://… or a SQLite file`;

const MODEL_OPTION = `  -m, --model [ID=]SOURCE  serve a model (repeatable): a .gguf path or hf:owner/repo/file.gguf.
                          Its id is the file name without .gguf (./q.gguf → q) unless ID= names it:
                          --model chat=./models/q.gguf. Two files with one name need an ID=.`;

const TOP = `switchboard — a self-hosted OpenAI-compatible API server

Usage:
  switchboard serve [options]            start the API server
  switchboard models list|pull           configured models: files, sizes, engines / download them now
  switchboard projects create|list|archive
  switchboard keys create|list|revoke    API keys (secrets are shown once)
  switchboard migrate                    apply database migrations and exit
  switchboard engine build|status        build llama-server (the fastest engine) / which one serve uses
  switchboard make-model                 write a random-weight GGUF model (tests, benchmarks)
  switchboard help COMMAND               the help of a command (or: switchboard COMMAND --help)

Every command answers --help. With npm, flags go after \`--\`: npm start -- --port 9000

Options:
  -h, --help            this text
  -v, --version         print the version
`;

const SERVE = `Usage: switchboard serve [options]

Starts the API server on http://HOST:PORT/v1. It binds the port first (a busy port fails at
once), then loads every model marked load: start; /ready answers 503 until they are loaded.
With no model configured it serves the random-weight demo model 'switchboard-demo'.

Options:
      --host HOST         address to bind (default 127.0.0.1; a non-loopback one turns auth on)
  -p, --port PORT         port (default 8080; 0 = any free port)
${MODEL_OPTION}
      --redis URL         redis://… to share limits between instances

${CONFIG_OPTIONS}
`;

const MODELS = `Usage: switchboard models list|pull [options]

  list   the configured models (or the demo model): id, aliases, source, the file and its size
         or download state, the engine that would run it, and the context size; routed models'
         deployments, with their circuits when Redis is configured or --server is given
         --server URL   also ask this running server for its deployments' circuits (GET
                        /admin/models, with admin_key or SWITCHBOARD_ADMIN_KEY when set)
  pull   download every configured hf: model now (resumable, checksum-verified)

Options:
${MODEL_OPTION}

${CONFIG_OPTIONS}
`;

const PROJECTS = `Usage: switchboard projects create|list|archive [options]

  create --name NAME [--rpm N] [--tpm N] [--concurrency N]   a project (its limits apply to all its keys)
  list                                                       every project, archived ones marked
  archive PROJECT_ID                                         its keys stop working; data is kept

  --json    print JSON lines

These commands write to the database directly (no server needed): pass the same
--config / --data-dir / --database as the server uses.

${DATABASE_OPTIONS}
`;

const KEYS = `Usage: switchboard keys create|list|revoke [options]

  create [--project ID] [--name N] [--admin] [--models a,b] [--expires-days D]
         [--rpm N] [--tpm N] [--concurrency N]
         a key; its secret is printed once. The first key turns auth ON for every server on
         this database. --models limits the key to those model ids or aliases (checked
         against the models of the config loaded).
  list [--project ID]
         id, name, role, the secret's last characters, state, allowed models, limits, expiry
  revoke [--project ID] KEY_ID
         the key stops working (within auth_cache_ttl_ms on running servers)

  --project ID   default: proj_default
  --json         print JSON lines

These commands write to the database directly (no server needed): pass the same
--config / --data-dir / --database as the server uses.

${DATABASE_OPTIONS}
`;

const MIGRATE = `Usage: switchboard migrate [options]

Applies the database migrations and exits (serve also applies them at start-up).

${DATABASE_OPTIONS}
`;

const ENGINE = `Usage: switchboard engine build|status [options]

  build    compile llama-server (the fastest local engine) from the llama.cpp source that
           node-llama-cpp ships, into the build cache; prints the binary's path
  status   which llama-server binary serve would use, and the cached builds
`;

const ENGINE_BUILD = `Usage: switchboard engine build [options]

Compiles llama-server (about 5–10 minutes on 2 cores; needs cmake, git and a C/C++ compiler)
and prints the binary's path. Returns at once when the cache already holds that build.

Options:
      --cuda auto|on|off  build with CUDA (auto: when nvcc and an NVIDIA driver are present)
      --no-native         a portable binary (no -march=native)
      --jobs N            parallel compile jobs
      --force             build again even when cached
      --cache-dir DIR     where builds go (default ~/.cache/switchboard/llama-server)
`;

const ENGINE_STATUS = `Usage: switchboard engine status [options]

Prints the llama-server binary serve would use (engines.llama_server.binary, then PATH, then
the build cache) and the cached builds. Exits 1 when there is none.

${CONFIG_OPTIONS}
`;

const MAKE_MODEL = `Usage: switchboard make-model --out FILE.gguf [options]

Writes a random-weight GGUF model of the llama architecture (byte-level tokenizer; ChatML
template for chat presets, mean pooling for embedding presets). It produces gibberish: it is
for tests and benchmarks.

Options:
      --out FILE.gguf               where to write it (required)
      --preset NAME                 chat: tiny (~300 KB, what the tests use; default) or
                                    smollm2-135m (SmolLM2-135M's shape); embeddings: embed-tiny
                                    or embed-small (bge-small's shape)
      --weights f16|q8_0            weight type (default f16)
      --seed N                      random seed (default 1)
      --chat-template FILE.jinja    the chat template the file carries (default ChatML)
      --fim                         add fill-in-the-middle tokens (<|fim_prefix|>, <|fim_suffix|>,
                                    <|fim_middle|>) in place of the vocabulary's last three pieces
`;

/** Help by command path ("keys create"); a subcommand without its own text shows its command's. */
const HELP: Readonly<Record<string, string>> = {
  "": TOP,
  serve: SERVE,
  models: MODELS,
  projects: PROJECTS,
  keys: KEYS,
  migrate: MIGRATE,
  engine: ENGINE,
  "engine build": ENGINE_BUILD,
  "engine status": ENGINE_STATUS,
  "make-model": MAKE_MODEL,
};

/** The subcommands of each command: `--help` after one of these shows the command's help for it. */
export const SUBCOMMANDS: Readonly<Record<string, readonly string[]>> = {
  models: ["list", "pull"],
  projects: ["create", "list", "archive"],
  keys: ["create", "list", "revoke"],
  engine: ["build", "status"],
};

export const COMMANDS: readonly string[] = [
  "serve",
  "models",
  "projects",
  "keys",
  "migrate",
  "engine",
  "make-model",
];

/** The help text for a command path such as ["keys", "create"]; unknown words are ignored. */
export function helpFor(path: readonly string[]): string {
  const [command, sub] = path;
  if (command === undefined || !COMMANDS.includes(command)) return TOP;
  if (sub !== undefined && SUBCOMMANDS[command]?.includes(sub)) {
    const own = HELP[`${command} ${sub}`];
    if (own) return own;
  }
  return HELP[command] ?? TOP;
}

/** Whether the arguments ask for help (flags after a bare `--` are not ours). */
export function wantsHelp(args: readonly string[]): boolean {
  for (const arg of args) {
    if (arg === "--") return false;
    if (arg === "-h" || arg === "--help") return true;
  }
  return false;
}
