import type { FastifyInstance } from "fastify";
import type { AdminService } from "../../admin/admin-service.js";
import { permissionDenied } from "../../core/errors.js";
import { parseBody } from "../../http/validation.js";
import type { ModelRegistry } from "../../router/model-registry.js";
import type { UsageRepository } from "../../storage/repositories/types.js";
import { encodeApiKey, encodeProject, encodeUsageRow, list } from "./encode.js";
import {
  createKeySchema,
  createProjectSchema,
  updateKeySchema,
  updateProjectSchema,
  usageQuerySchema,
} from "./schema.js";

type ProjectParams = { Params: { project_id: string } };
type KeyParams = { Params: { project_id: string; key_id: string } };

/** /admin/…: projects, keys, usage reports and model health. Only admin keys get here (see the auth hook). */
export async function adminRoutes(
  app: FastifyInstance,
  opts: { admin: AdminService; usage: UsageRepository; registry: ModelRegistry },
): Promise<void> {
  const { admin } = opts;
  // onRequest (after the app's auth hook): a non-admin caller is refused before its body is read.
  // This holds while auth is off too: the open caller of a laptop server is not an admin.
  app.addHook("onRequest", async (request) => {
    if (request.principal?.role !== "admin") throw adminKeyRequired();
  });

  app.post("/admin/projects", async (request, reply) => {
    const body = parseBody(createProjectSchema, request.body);
    return reply.code(201).send(encodeProject(await admin.createProject(body)));
  });
  app.get<{ Querystring: { include_archived?: string } }>("/admin/projects", async (request) =>
    list((await admin.listProjects(request.query.include_archived === "true")).map(encodeProject)),
  );
  app.get<ProjectParams>("/admin/projects/:project_id", async (request) =>
    encodeProject(await admin.getProject(request.params.project_id)),
  );
  app.patch<ProjectParams>("/admin/projects/:project_id", async (request) => {
    const body = parseBody(updateProjectSchema, request.body);
    return encodeProject(await admin.updateProject(request.params.project_id, body));
  });
  app.delete<ProjectParams>("/admin/projects/:project_id", async (request) =>
    encodeProject(await admin.archiveProject(request.params.project_id)),
  );

  app.post<ProjectParams>("/admin/projects/:project_id/keys", async (request, reply) => {
    const body = parseBody(createKeySchema, request.body);
    const { key, secret } = await admin.createKey(request.params.project_id, body);
    return reply.code(201).send(encodeApiKey(key, secret));
  });
  app.get<ProjectParams>("/admin/projects/:project_id/keys", async (request) =>
    list((await admin.listKeys(request.params.project_id)).map((k) => encodeApiKey(k))),
  );
  app.get<KeyParams>("/admin/projects/:project_id/keys/:key_id", async (request) =>
    encodeApiKey(await admin.getKey(request.params.project_id, request.params.key_id)),
  );
  app.patch<KeyParams>("/admin/projects/:project_id/keys/:key_id", async (request) => {
    const body = parseBody(updateKeySchema, request.body);
    return encodeApiKey(await admin.updateKey(request.params.project_id, request.params.key_id, body));
  });
  app.delete<KeyParams>("/admin/projects/:project_id/keys/:key_id", async (request) =>
    encodeApiKey(await admin.revokeKey(request.params.project_id, request.params.key_id)),
  );

  // Every model with what serves it: a local engine's state, or each upstream deployment's
  // circuit, failure streak, requests in flight and attempts (never a key or URL credentials).
  app.get("/admin/models", async () => ({
    object: "list",
    data: opts.registry.all().map((d) => {
      const health = d.backend.health();
      return {
        id: d.id,
        aliases: d.aliases,
        loaded: health.loaded,
        serving: health.serving,
        capabilities: d.backend.capabilities,
        ...d.backend.stats(),
        ...(health.engine && { engine: health.engine }),
        ...(health.deployments && { deployments: health.deployments }),
      };
    }),
  }));

  app.get("/admin/usage", async (request) => {
    const query = parseBody(usageQuerySchema, request.query ?? {});
    const rows = await opts.usage.summarize({
      projectId: query.project_id,
      keyId: query.key_id,
      fromDay: query.from,
      toDay: query.to,
      groupBy: query.group_by,
    });
    return list(rows.map(encodeUsageRow));
  });
}

function adminKeyRequired() {
  return permissionDenied(
    "The admin API needs an admin API key (Authorization: Bearer sk-sb-…). Create one on the server's machine with `switchboard keys create --admin` (it writes to the database directly), or set SWITCHBOARD_ADMIN_KEY.",
    "admin_key_required",
  );
}
