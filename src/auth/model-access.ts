import { modelNotFound } from "../core/errors.js";
import type { Principal } from "./principal.js";

/** The names a model answers to. */
export interface ModelNames {
  id: string;
  aliases: readonly string[];
}

/** Whether a key may use a deployment: its allow-list may name the model's id or any alias. */
export function mayUseModel(principal: Principal, deployment: ModelNames): boolean {
  const allowed = principal.allowedModels;
  if (allowed === null) return true;
  return allowed.includes(deployment.id) || deployment.aliases.some((alias) => allowed.includes(alias));
}

/**
 * A model outside the key's allow-list answers exactly as a model that does not exist (404
 * model_not_found, as OpenAI does), so a key cannot probe which models are configured.
 */
export function assertMayUseModel(principal: Principal, deployment: ModelNames, requested: string): void {
  if (!mayUseModel(principal, deployment)) throw modelNotFound(requested);
}
