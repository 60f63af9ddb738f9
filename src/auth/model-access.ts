import { ApiError } from "../http/errors.js";
import type { Deployment } from "../router/model-registry.js";
import type { Principal } from "./principal.js";

/** Whether a key may use a deployment: its allow-list may name the model's id or any alias. */
export function mayUseModel(principal: Principal, deployment: Deployment): boolean {
  const allowed = principal.allowedModels;
  if (allowed === null) return true;
  return allowed.includes(deployment.id) || deployment.aliases.some((alias) => allowed.includes(alias));
}

export function assertMayUseModel(principal: Principal, deployment: Deployment, requested: string): void {
  if (!mayUseModel(principal, deployment)) {
    throw new ApiError(403, `This API key is not allowed to use the model '${requested}'.`, {
      type: "permission_error",
      code: "model_not_allowed",
      param: "model",
    });
  }
}
