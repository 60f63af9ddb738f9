import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { readGgufFacts } from "../backends/local/engines/gguf-facts.js";
import {
  DEMO_MODEL_ID,
  demoModelConfigs,
  deploymentStateSettings,
  openDeploymentStates,
} from "../composition/build-registry.js";
import { deploymentNames } from "../config/routed-model-schema.js";
import type { Config, LocalModelConfig } from "../config/schema.js";
import type { DeploymentReport } from "../core/generation.js";
import { findLlamaServer } from "../engine-build/find-llama-server.js";
import { hfCachePath, parseModelSource } from "../models/model-source.js";
import { resolveModelFile } from "../models/resolve-model-file.js";
import { createCommandLogger } from "../observability/logger.js";
import type { DeploymentSnapshot } from "../router/deployment-state.js";
import { describeConfigFile, loadCliConfig } from "./config-options.js";
import { UsageError } from "./usage-error.js";

type Print = (line: string) => void;
type Logger = ReturnType<typeof createCommandLogger>;

/** `switchboard models list|pull`. */
export async function modelsCommand(args: string[], out: Print): Promise<number> {
  const [sub, ...given] = args;
  if (sub !== "list" && sub !== "pull")
    throw new UsageError(`Unknown models command '${sub ?? ""}': use 'list' or 'pull' (see models --help).`);
  const { server, rest } = takeServerOption(given);
  if (server !== undefined && sub !== "list") throw new UsageError("--server goes with 'models list' only.");
  const { config, file } = loadCliConfig(rest);
  const logger = createCommandLogger(
    config.log_level === "info" ? "warn" : config.log_level,
    config.log_format,
  );
  if (sub === "list") {
    out(describeConfigFile(file));
    const live = server === undefined ? undefined : await readServerCircuits(server, config.admin_key);
    await listModels(config, out, logger, live);
    if (live && !live.ok) {
      out("");
      out(`Circuit states from ${live.server}: not read (${live.problem}).`);
      return 1;
    }
    return 0;
  }
  for (const m of config.models) {
    const path = await resolveModelFile(m, config, logger);
    out(`${m.id}\t${path}`);
  }
  return 0;
}

/**
 * `--server URL` (or `--server=URL`): a running server to ask for its deployments' circuits, which
 * without Redis only that server knows. Taken out before the config flags are parsed.
 */
function takeServerOption(args: string[]): { server: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let server: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--server") {
      server = args[++i];
      if (server === undefined || server.startsWith("-")) throw new UsageError("--server needs a URL.");
    } else if (arg.startsWith("--server=")) {
      server = arg.slice("--server=".length);
    } else {
      rest.push(arg);
    }
  }
  if (server !== undefined && !/^https?:\/\/[^/]/i.test(server)) {
    throw new UsageError(`--server takes the server's http:// or https:// URL, not '${server}'.`);
  }
  return { server: server?.replace(/\/+$/, ""), rest };
}

/** Circuits a running server reports, by model id and deployment name; or why they could not be read. */
type ServerCircuits =
  | { ok: true; server: string; models: Map<string, Map<string, DeploymentReport>> }
  | { ok: false; server: string; problem: string };

/** GET /admin/models with the configured admin key (none: a server without keys, on loopback). */
async function readServerCircuits(server: string, adminKey: string | undefined): Promise<ServerCircuits> {
  let response: Response;
  try {
    response = await fetch(`${server}/admin/models`, {
      headers: adminKey ? { authorization: `Bearer ${adminKey}` } : {},
      signal: AbortSignal.timeout(SERVER_TIMEOUT_MS),
    });
  } catch (err) {
    return { ok: false, server, problem: (err as Error).message };
  }
  if (!response.ok) {
    await response.body?.cancel();
    const hint =
      response.status === 401 || response.status === 403 ? ": set admin_key (or SWITCHBOARD_ADMIN_KEY)" : "";
    return { ok: false, server, problem: `HTTP ${response.status}${hint}` };
  }
  const body = (await response.json().catch(() => undefined)) as
    | { data?: { id?: unknown; deployments?: DeploymentReport[] }[] }
    | undefined;
  if (!Array.isArray(body?.data))
    return { ok: false, server, problem: "not a Switchboard /admin/models answer" };
  const models = new Map<string, Map<string, DeploymentReport>>();
  for (const model of body.data) {
    if (typeof model.id !== "string" || !Array.isArray(model.deployments)) continue;
    models.set(model.id, new Map(model.deployments.map((d) => [d.name, d])));
  }
  return { ok: true, server, models };
}

const SERVER_TIMEOUT_MS = 5_000;

/** Each model the server would serve: names, source, file and its state, engine, context. */
async function listModels(
  config: Config,
  out: Print,
  logger: Logger,
  live: ServerCircuits | undefined,
): Promise<void> {
  await listRoutedModels(config, out, logger, live);
  if (config.models.length === 0 && config.routed_models.length > 0) return;
  const demo = config.models.length === 0;
  if (demo && !config.demo_model) {
    out("No models configured, and demo_model is off: serve would serve no model.");
    return;
  }
  const models = demo ? demoModelConfigs(config) : config.models;
  const auto = await autoEngine(config);
  for (const model of models) {
    out("");
    const aliases = model.aliases.length ? ` (aliases: ${model.aliases.join(", ")})` : "";
    out(`${model.id}${aliases}${demo ? demoNote(model) : ""}`);
    if (!demo) out(`  source   ${model.source}`);
    const weights = weightsState(model, config, demo);
    out(`  file     ${weights.path ?? "-"}  [${weights.state}]`);
    const engine = model.engine ?? "auto";
    out(`  engine   ${engine === "auto" ? `auto: ${auto}` : engine}`);
    out(
      `  context  ${await contextOf(model, config, weights.path && weights.present ? weights.path : undefined)}`,
    );
  }
}

/**
 * Each routed model and its deployments as configured: provider, upstream model and host, and
 * whether its key is set (never the key); each circuit as a running server reports it (--server),
 * or with Redis configured as every instance shares it. Without either, circuits live in each
 * running server (/ready, /admin/models).
 */
async function listRoutedModels(
  config: Config,
  out: Print,
  logger: Logger,
  live: ServerCircuits | undefined,
): Promise<void> {
  if (config.routed_models.length === 0) return;
  const reported = live?.ok ? live.models : undefined;
  const states = await openDeploymentStates(config, logger);
  try {
    for (const model of config.routed_models) {
      out("");
      const aliases = model.aliases.length ? ` (aliases: ${model.aliases.join(", ")})` : "";
      out(`${model.id}${aliases} — routed, ${model.balance}, deadline ${model.deadline_ms} ms`);
      const names = deploymentNames(model.deployments);
      for (const [j, d] of model.deployments.entries()) {
        const name = names[j] as string;
        const state = reported
          ? `  ${reportedCircuitText(reported.get(model.id)?.get(name))}`
          : states.shared
            ? `  ${circuitText(await states.forDeployment(model.id, name, deploymentStateSettings(config, model, d)).read())}`
            : "";
        if (d.provider === "local") {
          out(`  deployment ${name}  local model '${d.model}'  weight ${d.weight}${state}`);
          continue;
        }
        const host = new URL(d.base_url).host;
        const key = d.api_key ? "key set" : "no key";
        out(
          `  deployment ${name}  ${d.provider} ${host}  model ${d.model}  weight ${d.weight}  [${key}]${state}`,
        );
      }
      if (model.fallbacks.length) out(`  fallbacks  ${model.fallbacks.join(", ")}`);
    }
    if (live?.ok) {
      out("");
      out(`Circuit states as ${live.server} reports them.`);
    } else if (!states.shared && !live) {
      out("");
      out(
        "Circuit states are kept by each running server: GET /ready or /admin/models, or --server URL here (with redis: set, here too).",
      );
    }
  } finally {
    await states.close();
  }
}

function circuitText(state: DeploymentSnapshot | undefined): string {
  if (!state) return "circuit unknown (Redis does not answer)";
  return circuitLine(state.circuit, state.consecutiveFailures);
}

/** A deployment as a running server reports it: circuit, streak, and what is in flight. */
function reportedCircuitText(report: DeploymentReport | undefined): string {
  if (!report) return "circuit unknown (the server does not serve this deployment: another config?)";
  const inFlight = report.inFlight > 0 ? `, ${report.inFlight} in flight` : "";
  return `${circuitLine(report.circuit, report.consecutiveFailures)}${inFlight}`;
}

function circuitLine(circuit: string, streak: number): string {
  return `circuit ${circuit}${streak > 0 ? ` (${streak} failure${streak === 1 ? "" : "s"} in a row)` : ""}`;
}

function demoNote(model: LocalModelConfig): string {
  return model.id === DEMO_MODEL_ID
    ? " — the built-in demo model: random weights, it produces gibberish"
    : " — the built-in demo embedding model: random weights, its vectors mean nothing";
}

interface WeightsState {
  path: string | undefined;
  present: boolean;
  state: string;
}

function weightsState(model: LocalModelConfig, config: Config, demo: boolean): WeightsState {
  let source: ReturnType<typeof parseModelSource>;
  try {
    source = parseModelSource(model.source);
  } catch (err) {
    return { path: undefined, present: false, state: (err as Error).message };
  }
  if (source.kind === "file") {
    const path = resolve(source.path);
    if (existsSync(path)) return { path, present: true, state: size(statSync(path).size) };
    return { path, present: false, state: demo ? "not generated yet: serve makes it" : "MISSING" };
  }
  const path = hfCachePath(resolve(config.data_dir), source);
  if (existsSync(path)) return { path, present: true, state: `downloaded, ${size(statSync(path).size)}` };
  const partial = `${path}.partial`;
  if (existsSync(partial))
    return {
      path,
      present: false,
      state: `partly downloaded (${size(statSync(partial).size)}); serve or models pull resumes it`,
    };
  return { path, present: false, state: "not downloaded; serve or models pull downloads it" };
}

/** What `engine: auto` picks: llama-server when a binary is found, else the runner. */
async function autoEngine(config: Config): Promise<string> {
  try {
    const found = await findLlamaServer(config.engines.llama_server);
    return found ? `llama-server (${found.path})` : "runner (no llama-server binary)";
  } catch (err) {
    return `none: ${(err as Error).message}`;
  }
}

async function contextOf(model: LocalModelConfig, config: Config, file: string | undefined): Promise<string> {
  const cap = config.engines.default_context_cap;
  const tail = `, ${model.parallel} in parallel`;
  if (model.context_size) return `${model.context_size} tokens per sequence (configured)${tail}`;
  if (!file) return `the model's training context, at most ${cap} (engines.default_context_cap)${tail}`;
  try {
    const trained = (await readGgufFacts(file)).trainContextSize;
    const used = Math.min(trained, cap);
    return `${used} tokens per sequence (trained ${trained}${used < trained ? `, capped at ${cap}` : ""})${tail}`;
  } catch (err) {
    return `unknown: the file's header cannot be read (${(err as Error).message})`;
  }
}

function size(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(0)} KiB`;
}
