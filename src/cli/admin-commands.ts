import { parseArgs } from "node:util";
import { AdminService } from "../admin/admin-service.js";
import { DEFAULT_PROJECT_ID } from "../auth/principal.js";
import { databaseUrl } from "../composition/build-access.js";
import { servedModelNames } from "../composition/build-registry.js";
import { ServiceError } from "../core/errors.js";
import { openStorage } from "../storage/storage.js";
import { type ConfigFile, loadCliConfig } from "./config-options.js";
import { formatKeyLine, KEY_LIST_HEADER } from "./key-listing.js";
import { UsageError } from "./usage-error.js";

const ADMIN_OPTIONS = {
  project: { type: "string" },
  name: { type: "string" },
  admin: { type: "boolean" },
  models: { type: "string" },
  "expires-days": { type: "string" },
  rpm: { type: "string" },
  tpm: { type: "string" },
  concurrency: { type: "string" },
  json: { type: "boolean" },
} as const;

interface Values {
  project?: string;
  name?: string;
  admin?: boolean;
  models?: string;
  "expires-days"?: string;
  rpm?: string;
  tpm?: string;
  concurrency?: string;
  json?: boolean;
}

type Print = (line: string) => void;

/**
 * `switchboard keys …` and `switchboard projects …`: the same rules as the admin API, straight
 * on the database (so the first admin key can be made before any server runs).
 */
export async function runAdminCommand(
  area: "keys" | "projects",
  args: string[],
  out: Print,
): Promise<number> {
  const [sub, ...rest] = args;
  // Options the config loader knows (--config, --data-dir, --database) are split from ours.
  const { ours, configArgs } = splitArgs(rest);
  const { config, file } = loadCliConfig(configArgs);
  const { values, positionals } = parseArgs({
    args: ours,
    options: ADMIN_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  const storage = await openStorage({ url: databaseUrl(config) });
  // The CLI may run without a server: the models a key may name are those of the config loaded.
  const modelNames = servedModelNames(config);
  const admin = new AdminService(storage, { modelNames: () => modelNames });
  try {
    if (area === "projects") return await projects(admin, sub, values, positionals, out);
    return await keys(admin, sub, values, positionals, out);
  } catch (err) {
    if (err instanceof ServiceError && err.param === "allowed_models")
      throw new UsageError(`--models: ${err.message} ${checkedAgainst(file)}`);
    if (err instanceof ServiceError) throw new UsageError(err.message);
    throw err;
  } finally {
    await storage.close();
  }
}

/** `switchboard migrate`. */
export async function migrateCommand(args: string[], out: Print): Promise<number> {
  const { config } = loadCliConfig(args);
  const storage = await openStorage({ url: databaseUrl(config) });
  await storage.close();
  out(`migrations applied (${storage.database.dialect})`);
  return 0;
}

/** Which models list the CLI checked --models against: it may not be the server's. */
function checkedAgainst(file: ConfigFile): string {
  const source = file.path ? `the config file ${file.path}` : "the defaults (no config file was loaded)";
  return `(checked against the models of ${source}; pass the server's config with --config FILE)`;
}

async function projects(admin: AdminService, sub: string | undefined, v: Values, pos: string[], out: Print) {
  switch (sub) {
    case "create": {
      if (!v.name) throw new UsageError("projects create needs --name NAME");
      const p = await admin.createProject({ name: v.name, limits: limitsFrom(v) });
      out(v.json ? JSON.stringify(p) : `${p.id}\t${p.name}`);
      return 0;
    }
    case "list":
      for (const p of await admin.listProjects(true)) {
        out(v.json ? JSON.stringify(p) : `${p.id}\t${p.name}${p.archivedAt ? "\t(archived)" : ""}`);
      }
      return 0;
    case "archive": {
      const id = pos[0];
      if (!id) throw new UsageError("projects archive needs a project id");
      await admin.archiveProject(id);
      out(`archived ${id}`);
      return 0;
    }
    default:
      throw new UsageError("use: projects create --name NAME | projects list | projects archive PROJECT_ID");
  }
}

async function keys(admin: AdminService, sub: string | undefined, v: Values, pos: string[], out: Print) {
  const project = v.project ?? DEFAULT_PROJECT_ID;
  switch (sub) {
    case "create": {
      const days =
        v["expires-days"] === undefined ? undefined : positiveInt(v["expires-days"], "--expires-days");
      const firstKey = (await admin.countActiveKeys()) === 0;
      const { key, secret } = await admin.createKey(project, {
        name: v.name ?? (v.admin ? "admin" : "key"),
        role: v.admin ? "admin" : "member",
        allowed_models: v.models
          ? v.models
              .split(",")
              .map((m) => m.trim())
              .filter(Boolean)
          : null,
        expires_at: days === undefined ? null : Math.floor(Date.now() / 1000) + days * 86_400,
        limits: limitsFrom(v),
      });
      if (v.json) out(JSON.stringify({ ...key, secret, auth_turned_on: firstKey }));
      else {
        out(`created ${key.id} in ${key.projectId} (${key.role})`);
        out(`secret: ${secret}`);
        out("Store the secret now: it is not shown again.");
        if (firstKey) {
          out(
            "This is the first API key: auth is now ON for every server using this database (within a few seconds). Requests without a key get 401; send Authorization: Bearer <key>.",
          );
        }
      }
      return 0;
    }
    case "list": {
      const list = await admin.listKeys(project);
      if (!v.json) out(KEY_LIST_HEADER);
      for (const k of list) out(v.json ? JSON.stringify(k) : formatKeyLine(k, Date.now()));
      return 0;
    }
    case "revoke": {
      const id = pos[0];
      if (!id) throw new UsageError("keys revoke needs a key id (and --project if not the default project)");
      await admin.revokeKey(project, id);
      out(`revoked ${id}`);
      return 0;
    }
    default:
      throw new UsageError(
        "use: keys create [--project P] [--name N] [--admin] [--models a,b] [--expires-days D] [--rpm N] [--tpm N] [--concurrency N] | keys list [--project P] | keys revoke [--project P] KEY_ID",
      );
  }
}

function limitsFrom(v: Values) {
  return {
    requests_per_minute: v.rpm === undefined ? undefined : positiveInt(v.rpm, "--rpm"),
    tokens_per_minute: v.tpm === undefined ? undefined : positiveInt(v.tpm, "--tpm"),
    max_concurrent: v.concurrency === undefined ? undefined : positiveInt(v.concurrency, "--concurrency"),
  };
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive whole number`);
  return n;
}

const CONFIG_FLAGS = new Set(["--config", "-c", "--data-dir", "--database", "--log-level", "--log-format"]);

function splitArgs(args: string[]): { ours: string[]; configArgs: string[] } {
  const ours: string[] = [];
  const configArgs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const flag = arg.split("=")[0] as string;
    if (CONFIG_FLAGS.has(flag)) {
      configArgs.push(arg);
      if (!arg.includes("=") && i + 1 < args.length) configArgs.push(args[++i] as string);
    } else ours.push(arg);
  }
  return { ours, configArgs };
}
