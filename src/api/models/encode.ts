import type { Deployment } from "../../router/model-registry.js";

export function encodeModel(d: Deployment) {
  return { id: d.id, object: "model", created: d.created, owned_by: d.ownedBy };
}

export function encodeModelList(deployments: readonly Deployment[]) {
  return { object: "list", data: deployments.map(encodeModel) };
}
