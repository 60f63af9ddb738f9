import { type KeyRole, type Limits, NO_LIMITS } from "../storage/repositories/types.js";

/** Who is calling: the project every object they touch belongs to, and what they may do. */
export interface Principal {
  projectId: string;
  /** null when auth is off (loopback, no keys) — requests then belong to the default project. */
  keyId: string | null;
  role: KeyRole;
  /** null = every model. */
  allowedModels: readonly string[] | null;
  keyLimits: Limits;
  projectLimits: Limits;
}

export const DEFAULT_PROJECT_ID = "proj_default";

/**
 * The caller when auth is off: the default project, no limits. Not an admin: the admin API needs
 * an admin key in every mode, or any local process (or a page through DNS rebinding) could mint
 * one and lock the owner out.
 */
export const OPEN_PRINCIPAL: Principal = Object.freeze({
  projectId: DEFAULT_PROJECT_ID,
  keyId: null,
  role: "member",
  allowedModels: null,
  keyLimits: NO_LIMITS,
  projectLimits: NO_LIMITS,
});

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook on every route that needs a caller. */
    principal: Principal;
  }
}
