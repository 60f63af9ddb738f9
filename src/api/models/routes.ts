import type { FastifyInstance } from "fastify";
import { modelNotFound } from "../../http/errors.js";
import type { ModelRegistry } from "../../router/model-registry.js";
import { encodeModel, encodeModelList } from "./encode.js";

export async function modelRoutes(app: FastifyInstance, opts: { registry: ModelRegistry }): Promise<void> {
  const { registry } = opts;
  app.get("/v1/models", async () => encodeModelList(registry.all()));

  // Model ids may contain slashes (owner/name), so the id is the rest of the path.
  app.get<{ Params: { "*": string } }>("/v1/models/*", async (request) => {
    const name = request.params["*"];
    const deployment = registry.find(name);
    // Only a model's own id is listed; an alias also finds it, reported under its id.
    if (!deployment) throw modelNotFound(name);
    return encodeModel(deployment);
  });
}
