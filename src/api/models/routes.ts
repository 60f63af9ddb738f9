import type { FastifyInstance } from "fastify";
import { mayUseModel } from "../../auth/model-access.js";
import { modelNotFound } from "../../core/errors.js";
import type { ModelRegistry } from "../../router/model-registry.js";
import { encodeModel, encodeModelList } from "./encode.js";

export async function modelRoutes(app: FastifyInstance, opts: { registry: ModelRegistry }): Promise<void> {
  const { registry } = opts;
  // A key limited to some models sees only those: the rest "do not exist" for it.
  app.get("/v1/models", async (request) =>
    encodeModelList(registry.all().filter((d) => mayUseModel(request.principal, d))),
  );

  // Model ids may contain slashes (owner/name), so the id is the rest of the path.
  app.get<{ Params: { "*": string } }>("/v1/models/*", async (request) => {
    const name = request.params["*"];
    const deployment = registry.find(name);
    // Only a model's own id is listed; an alias also finds it, reported under its id.
    if (!deployment || !mayUseModel(request.principal, deployment)) throw modelNotFound(name);
    return encodeModel(deployment);
  });
}
