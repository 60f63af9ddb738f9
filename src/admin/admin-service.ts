import { generateKeySecret, hashKeySecret, keyHint } from "../auth/api-key-secret.js";
import { DEFAULT_PROJECT_ID } from "../auth/principal.js";
import { clip, invalidRequest, notFound } from "../core/errors.js";
import { randomId } from "../core/ids.js";
import type { ApiKey, KeyRole, Limits, Project, Repositories } from "../storage/repositories/types.js";

/** Limits as the admin API and the CLI take them: a field left out is unchanged, null lifts the limit. */
export interface LimitsInput {
  requests_per_minute?: number | null;
  tokens_per_minute?: number | null;
  max_concurrent?: number | null;
  monthly_token_budget?: number | null;
  monthly_cost_budget_usd?: number | null;
}

export const projectNotFound = (id: string) =>
  notFound(`No project with id '${clip(id)}'.`, "project_not_found", "project_id");
export const keyNotFound = (id: string) =>
  notFound(`No API key with id '${clip(id)}' in this project.`, "api_key_not_found", "key_id");

export interface AdminServiceOptions {
  now?: () => number;
  /** Called after a key or project changes, so cached auth verdicts are dropped. */
  onChange?: () => void;
  /**
   * The model names (ids and aliases) a key's `allowed_models` may hold: the server's models, or
   * for the CLI the models of the config it loaded. Without it any name is taken.
   */
  modelNames?: () => readonly string[];
}

/** Projects and keys: shared by the admin API and the CLI, so both enforce the same rules. */
export class AdminService {
  private readonly now: () => number;
  private readonly onChange: () => void;

  constructor(
    private readonly repos: Repositories,
    private readonly options: AdminServiceOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.onChange = options.onChange ?? (() => {});
  }

  createProject(input: { name: string; limits?: LimitsInput }): Promise<Project> {
    return this.repos.projects.create({
      id: `proj_${randomId(20)}`,
      name: input.name,
      limits: toLimits(input.limits),
      now: this.now(),
    });
  }

  listProjects(includeArchived: boolean): Promise<Project[]> {
    return this.repos.projects.list({ includeArchived });
  }

  async getProject(id: string): Promise<Project> {
    const project = await this.repos.projects.get(id);
    if (!project) throw projectNotFound(id);
    return project;
  }

  async updateProject(id: string, patch: { name?: string; limits?: LimitsInput }): Promise<Project> {
    const project = await this.repos.projects.update(id, {
      name: patch.name,
      limits: toLimits(patch.limits),
    });
    if (!project) throw projectNotFound(id);
    this.onChange();
    return project;
  }

  async archiveProject(id: string): Promise<Project> {
    if (id === DEFAULT_PROJECT_ID)
      throw invalidRequest("The default project cannot be archived.", "project_id");
    const project = await this.getProject(id);
    if (project.archivedAt === null) await this.repos.projects.archive(id, this.now());
    this.onChange();
    return this.getProject(id);
  }

  /** Creates a key and returns its secret — the only time the secret exists outside the caller. */
  async createKey(
    projectId: string,
    input: {
      name: string;
      role: KeyRole;
      allowed_models?: string[] | null;
      expires_at?: number | null;
      limits?: LimitsInput;
    },
  ): Promise<{ key: ApiKey; secret: string }> {
    const project = await this.getProject(projectId);
    if (project.archivedAt !== null) throw invalidRequest("This project is archived.", "project_id");
    this.checkModelNames(input.allowed_models);
    const expiresAt = input.expires_at == null ? null : input.expires_at * 1000;
    if (expiresAt !== null && expiresAt <= this.now())
      throw invalidRequest("expires_at is in the past.", "expires_at");
    const secret = generateKeySecret();
    const key = await this.repos.apiKeys.create({
      id: `key_${randomId(20)}`,
      projectId,
      name: input.name,
      keyHash: hashKeySecret(secret),
      keyHint: keyHint(secret),
      role: input.role,
      allowedModels: input.allowed_models ?? null,
      expiresAt,
      limits: toLimits(input.limits),
      now: this.now(),
    });
    this.onChange();
    return { key, secret };
  }

  /** Keys that authenticate right now (not revoked, not expired); any at all turns auth on. */
  countActiveKeys(): Promise<number> {
    return this.repos.apiKeys.countActive(this.now());
  }

  async listKeys(projectId: string): Promise<ApiKey[]> {
    await this.getProject(projectId);
    return this.repos.apiKeys.list(projectId);
  }

  async getKey(projectId: string, keyId: string): Promise<ApiKey> {
    const key = await this.repos.apiKeys.get(projectId, keyId);
    if (!key) throw keyNotFound(keyId);
    return key;
  }

  async updateKey(
    projectId: string,
    keyId: string,
    patch: {
      name?: string;
      allowed_models?: string[] | null;
      expires_at?: number | null;
      limits?: LimitsInput;
    },
  ): Promise<ApiKey> {
    this.checkModelNames(patch.allowed_models);
    const key = await this.repos.apiKeys.update(projectId, keyId, {
      name: patch.name,
      allowedModels: patch.allowed_models,
      expiresAt:
        patch.expires_at === undefined
          ? undefined
          : patch.expires_at === null
            ? null
            : patch.expires_at * 1000,
      limits: toLimits(patch.limits),
    });
    if (!key) throw keyNotFound(keyId);
    this.onChange();
    return key;
  }

  /**
   * A name no model has would make a key that can use nothing, silently (a typo, or a model not
   * configured yet): refused, naming the unknown names and the ones that exist.
   */
  private checkModelNames(names: readonly string[] | null | undefined): void {
    if (!names || !this.options.modelNames) return;
    const known = this.options.modelNames();
    const unknown = [...new Set(names.filter((name) => !known.includes(name)))];
    if (unknown.length === 0) return;
    const quoted = unknown.map((name) => `'${clip(name, 64)}'`).join(", ");
    const served = known.length ? known.slice(0, 20).join(", ") + (known.length > 20 ? ", …" : "") : "none";
    throw invalidRequest(
      `allowed_models names ${unknown.length === 1 ? "a model" : "models"} this server does not serve: ${quoted}. Model ids and aliases served: ${served}.`,
      "allowed_models",
      "unknown_model",
    );
  }

  async revokeKey(projectId: string, keyId: string): Promise<ApiKey> {
    await this.getKey(projectId, keyId);
    await this.repos.apiKeys.revoke(projectId, keyId, this.now());
    this.onChange();
    return this.getKey(projectId, keyId);
  }
}

function toLimits(input: LimitsInput | undefined): Partial<Limits> | undefined {
  if (!input) return undefined;
  return {
    requestsPerMinute: input.requests_per_minute,
    tokensPerMinute: input.tokens_per_minute,
    maxConcurrent: input.max_concurrent,
    monthlyTokenBudget: input.monthly_token_budget,
    monthlyCostBudgetUsd: input.monthly_cost_budget_usd,
  };
}
