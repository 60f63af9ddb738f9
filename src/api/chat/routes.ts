import type { FastifyInstance } from "fastify";
import type { GenerationPart } from "../../core/generation.js";
import type { IdGenerator } from "../../core/ids.js";
import { invalidRequest } from "../../http/errors.js";
import { processingMs, requestAbortSignal } from "../../http/request-context.js";
import { SseWriter } from "../../http/sse.js";
import { parseBody } from "../../http/validation.js";
import type { Metrics } from "../../observability/metrics.js";
import type { ModelRegistry } from "../../router/model-registry.js";
import {
  ChatChunkEncoder,
  type ChatResponseMeta,
  collectChatCompletion,
  streamChatCompletion,
  type UsageCounts,
} from "./encode.js";
import { chatRequestSchema } from "./schema.js";
import { toGenerationRequest } from "./service.js";

export interface ChatRouteOptions {
  registry: ModelRegistry;
  metrics: Metrics;
  ids: IdGenerator;
  now: () => number;
  shutdown: AbortSignal;
  maxN: number;
}

export async function chatRoutes(app: FastifyInstance, opts: ChatRouteOptions): Promise<void> {
  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(chatRequestSchema, request.body);
    const deployment = opts.registry.resolve(body.model);
    const backend = deployment.backend;
    if (!backend.capabilities.chat)
      throw invalidRequest(`The model '${body.model}' does not support chat completions.`, "model");
    const genReq = toGenerationRequest(body, deployment.id, {
      maxN: opts.maxN,
      supportsVision: backend.capabilities.vision,
    });
    const telemetry = request.telemetry;
    telemetry.model = deployment.id;
    telemetry.stream = body.stream === true;

    const signal = requestAbortSignal(reply, opts.shutdown);
    const meta: ChatResponseMeta = {
      id: opts.ids.chatCompletion(),
      created: Math.floor(opts.now() / 1000),
      model: body.model,
      systemFingerprint: deployment.systemFingerprint,
    };
    const prepared = await backend.prepare(genReq);
    const parts = withFirstTokenTiming(backend.generate(prepared, signal), request.startedAt, telemetry);

    let usage: UsageCounts | undefined;
    if (!body.stream) {
      const result = await collectChatCompletion(parts, meta, genReq.n, genReq.logprobs !== undefined);
      usage = result.usage;
      recordUsage(opts.metrics, telemetry, deployment.id, usage);
      return reply.send(result.body);
    }

    // Admission errors (overload, context length, bad input found by the backend) surface on the
    // first part, before any byte is written, so they still get a JSON error with their status.
    const iterator = parts[Symbol.asyncIterator]();
    const first = await iterator.next();
    const sse = new SseWriter(reply.raw, {
      headers: { "x-request-id": String(request.id), "openai-processing-ms": processingMs(request) },
    });
    reply.hijack();
    sse.open();
    const includeUsage = body.stream_options?.include_usage === true;
    try {
      usage = await streamChatCompletion(
        iterator,
        first.done ? undefined : first.value,
        sse,
        new ChatChunkEncoder(meta, includeUsage),
        { n: genReq.n, includeUsage },
      );
      recordUsage(opts.metrics, telemetry, deployment.id, usage);
      await sse.done();
    } catch (err) {
      request.log.error({ err, requestId: request.id }, "stream failed after it began");
      await sse.fail({
        error: {
          message: "The server had an error while generating this response.",
          type: "server_error",
          param: null,
          code: null,
        },
      });
      await iterator.return?.(undefined);
    }
  });
}

function recordUsage(
  metrics: Metrics,
  telemetry: { promptTokens?: number; completionTokens?: number; cachedTokens?: number },
  model: string,
  usage: UsageCounts | undefined,
): void {
  if (!usage) return;
  telemetry.promptTokens = usage.promptTokens;
  telemetry.completionTokens = usage.completionTokens;
  telemetry.cachedTokens = usage.cachedTokens;
  metrics.recordUsage(model, usage);
}

async function* withFirstTokenTiming(
  parts: AsyncIterable<GenerationPart>,
  startedAt: number,
  telemetry: { timeToFirstTokenMs?: number },
): AsyncGenerator<GenerationPart> {
  for await (const part of parts) {
    if (part.type === "text" && telemetry.timeToFirstTokenMs === undefined) {
      telemetry.timeToFirstTokenMs = performance.now() - startedAt;
    }
    yield part;
  }
}
