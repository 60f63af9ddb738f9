import type { FastifyInstance } from "fastify";
import type { IdGenerator } from "../../core/ids.js";
import { collectGeneration, type GenerationService } from "../../generation/service.js";
import { streamGeneration } from "../../http/generation-stream.js";
import { requestCancellation } from "../../http/request-context.js";
import { parseBody } from "../../http/validation.js";
import { CompletionChunkEncoder, collectCompletion, streamCompletion } from "./encode.js";
import { completionRequestSchema } from "./schema.js";
import { type CompletionShape, toGenerationRequest } from "./service.js";

export interface CompletionRouteOptions {
  generation: GenerationService;
  ids: IdGenerator;
  now: () => number;
  shutdown: AbortSignal;
  maxN: number;
}

/** POST /v1/completions (legacy text completions): parse, hand to the generation service, encode. */
export async function completionRoutes(app: FastifyInstance, opts: CompletionRouteOptions): Promise<void> {
  app.post("/v1/completions", async (request, reply) => {
    const body = parseBody(completionRequestSchema, request.body);
    // Cut when the client leaves: no AbortSignal is made for it on the way to an upstream.
    const signal = requestCancellation(reply, opts.shutdown);
    request.telemetry.stream = body.stream === true;
    let shape: CompletionShape | undefined;
    const generation = await opts.generation.start({
      principal: request.principal,
      endpoint: "completions",
      capability: "completions",
      model: body.model,
      toRequest: (deployment) => {
        const mapped = toGenerationRequest(body, deployment.id, { maxN: opts.maxN });
        shape = mapped.shape;
        return mapped.request;
      },
      signal,
      startedAt: request.startedAt,
      telemetry: request.telemetry,
    });
    const responseShape = shape as CompletionShape;
    reply.headers(generation.hints);
    const meta = {
      id: opts.ids.completion(),
      created: Math.floor(opts.now() / 1000),
      model: body.model,
      systemFingerprint: generation.deployment.systemFingerprint,
    };
    if (!body.stream) {
      const result = await collectGeneration(generation, signal, (parts) =>
        collectCompletion(parts, meta, responseShape),
      );
      return reply.send(result.body);
    }
    const includeUsage = body.stream_options?.include_usage === true;
    const encoder = new CompletionChunkEncoder(meta);
    await streamGeneration(request, reply, generation, signal, (first, rest, sse) =>
      streamCompletion(rest, first, sse, encoder, responseShape, includeUsage),
    );
  });
}
