import type { FastifyInstance } from "fastify";
import type { IdGenerator } from "../../core/ids.js";
import { collectGeneration, type GenerationService } from "../../generation/service.js";
import { streamGeneration } from "../../http/generation-stream.js";
import { requestCancellation } from "../../http/request-context.js";
import { parseBody } from "../../http/validation.js";
import { ChatChunkEncoder, collectChatCompletion, streamChatCompletion } from "./encode.js";
import { chatRequestSchema } from "./schema.js";
import { toGenerationRequest } from "./service.js";

export interface ChatRouteOptions {
  generation: GenerationService;
  ids: IdGenerator;
  now: () => number;
  shutdown: AbortSignal;
  maxN: number;
}

/** POST /v1/chat/completions: parse, hand to the generation service, encode. */
export async function chatRoutes(app: FastifyInstance, opts: ChatRouteOptions): Promise<void> {
  // How many prompt tokens the request would use, template applied (an extension, named after
  // the Responses API's input_tokens): for budgeting, nothing generated or charged.
  app.post("/v1/chat/completions/input_tokens", async (request) => {
    const body = parseBody(chatRequestSchema, request.body);
    const counted = await opts.generation.countInputTokens({
      principal: request.principal,
      endpoint: "chat.completions",
      capability: "chat",
      model: body.model,
      toRequest: (deployment) => toGenerationRequest(body, deployment.id, { maxN: opts.maxN }),
    });
    return { object: "chat.completion.input_tokens", input_tokens: counted.tokens };
  });

  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(chatRequestSchema, request.body);
    // Cut when the client leaves: no AbortSignal is made for it on the way to an upstream.
    const signal = requestCancellation(reply, opts.shutdown);
    request.telemetry.stream = body.stream === true;
    const generation = await opts.generation.start({
      principal: request.principal,
      endpoint: "chat.completions",
      capability: "chat",
      model: body.model,
      toRequest: (deployment) => toGenerationRequest(body, deployment.id, { maxN: opts.maxN }),
      signal,
      startedAt: request.startedAt,
      telemetry: request.telemetry,
    });
    reply.headers(generation.hints);
    const meta = {
      id: opts.ids.chatCompletion(),
      created: Math.floor(opts.now() / 1000),
      model: body.model,
      systemFingerprint: generation.deployment.systemFingerprint,
    };
    const n = generation.request.n;

    if (!body.stream) {
      const wantLogprobs = generation.request.logprobs !== undefined;
      const result = await collectGeneration(generation, signal, (parts) =>
        collectChatCompletion(parts, meta, n, wantLogprobs),
      );
      return reply.send(result.body);
    }
    const includeUsage = body.stream_options?.include_usage === true;
    const encoder = new ChatChunkEncoder(meta, includeUsage);
    await streamGeneration(request, reply, generation, signal, async (first, rest, sse) => {
      await streamChatCompletion(rest, first, sse, encoder, { n, includeUsage });
    });
  });
}
