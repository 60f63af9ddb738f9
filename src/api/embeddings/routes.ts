import type { FastifyInstance } from "fastify";
import type { GenerationService } from "../../generation/service.js";
import { requestCancellation } from "../../http/request-context.js";
import { parseBody } from "../../http/validation.js";
import { encodeEmbeddings } from "./encode.js";
import { embeddingRequestSchema } from "./schema.js";
import { toEmbeddingRequest } from "./service.js";

export interface EmbeddingRouteOptions {
  generation: GenerationService;
  shutdown: AbortSignal;
}

/** POST /v1/embeddings: parse, hand to the generation service, encode. */
export async function embeddingRoutes(app: FastifyInstance, opts: EmbeddingRouteOptions): Promise<void> {
  app.post("/v1/embeddings", async (request, reply) => {
    const body = parseBody(embeddingRequestSchema, request.body);
    const signal = requestCancellation(reply, opts.shutdown);
    const embeddings = await opts.generation.embed({
      principal: request.principal,
      endpoint: "embeddings",
      model: body.model,
      toRequest: (deployment) => toEmbeddingRequest(body, deployment.id),
      signal,
      startedAt: request.startedAt,
      telemetry: request.telemetry,
    });
    reply.headers(embeddings.hints);
    return reply.send(encodeEmbeddings(embeddings.result, body.model, body.encoding_format ?? "float"));
  });
}
