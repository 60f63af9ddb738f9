import type { FastifyInstance } from "fastify";
import { parseBody } from "../../http/validation.js";
import { encodePage } from "../files/encode.js";
import { encodeBatch } from "./encode.js";
import { createBatchSchema, listBatchesQuerySchema } from "./schema.js";
import type { BatchService } from "./service.js";

type BatchParams = { Params: { batch_id: string } };

/** /v1/batches: create (answers validating; a worker checks the input), retrieve, list, cancel. */
export async function batchRoutes(app: FastifyInstance, opts: { batches: BatchService }): Promise<void> {
  const service = opts.batches;
  app.post("/v1/batches", async (request) => {
    const body = parseBody(createBatchSchema, request.body);
    return encodeBatch(await service.create(request.principal, body));
  });
  app.get("/v1/batches", async (request) => {
    const query = parseBody(listBatchesQuerySchema, request.query ?? {});
    const batches = await service.list(request.principal.projectId, query);
    return encodePage(batches, query.limit, encodeBatch, (b) => b.id);
  });
  app.get<BatchParams>("/v1/batches/:batch_id", async (request) =>
    encodeBatch(await service.get(request.principal.projectId, request.params.batch_id)),
  );
  app.post<BatchParams>("/v1/batches/:batch_id/cancel", async (request) =>
    encodeBatch(await service.cancel(request.principal.projectId, request.params.batch_id)),
  );
}
