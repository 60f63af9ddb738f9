import type { FastifyInstance } from "fastify";
import { assertMayUseModel } from "../../auth/model-access.js";
import { invalidRequest, ServiceError, serviceUnavailable } from "../../core/errors.js";
import type { GenerationPart } from "../../core/generation.js";
import type { IdGenerator } from "../../core/ids.js";
import { streamErrorBody } from "../../http/errors.js";
import { pendingHeaders, requestAbortSignal } from "../../http/request-context.js";
import { SseWriter } from "../../http/sse.js";
import { parseBody } from "../../http/validation.js";
import type { Metrics } from "../../observability/metrics.js";
import type { ModelRegistry } from "../../router/model-registry.js";
import type { Metering } from "../../usage/metering.js";
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
  metering: Metering;
  ids: IdGenerator;
  now: () => number;
  shutdown: AbortSignal;
  maxN: number;
}

export async function chatRoutes(app: FastifyInstance, opts: ChatRouteOptions): Promise<void> {
  app.post("/v1/chat/completions", async (request, reply) => {
    const body = parseBody(chatRequestSchema, request.body);
    const deployment = opts.registry.resolve(body.model);
    assertMayUseModel(request.principal, deployment, body.model);
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

    const prepared = await backend.prepare(genReq);
    const metered = await opts.metering.start(request.principal, deployment, prepared, "chat.completions");
    reply.headers(metered.headers);
    let usage: UsageCounts | undefined;
    let status = 500;
    try {
      const signal = requestAbortSignal(reply, opts.shutdown);
      const meta: ChatResponseMeta = {
        id: opts.ids.chatCompletion(),
        created: Math.floor(opts.now() / 1000),
        model: body.model,
        systemFingerprint: deployment.systemFingerprint,
      };
      const parts = withFirstTokenTiming(backend.generate(prepared, signal), request.startedAt, telemetry);

      if (!body.stream) {
        const result = await collectChatCompletion(parts, meta, genReq.n, genReq.logprobs !== undefined);
        // A cut generation (client gone, or shutdown out of patience) must not pass for a success.
        if (signal.aborted) throw serviceUnavailable("The request was cancelled before it completed.");
        usage = result.usage;
        status = 200;
        recordUsage(opts.metrics, telemetry, deployment.id, usage);
        return reply.send(result.body);
      }

      // Admission errors (overload) surface on the first part, before any byte is written, so
      // they still get a JSON error with their status.
      const iterator = parts[Symbol.asyncIterator]();
      try {
        const first = await iterator.next();
        const sse = new SseWriter(reply.raw, { headers: pendingHeaders(request, reply) });
        reply.hijack();
        sse.open();
        status = 200;
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
          // A stream cut short (client gone, or cut off for not reading) never ends with [DONE].
          if (!signal.aborted && !sse.signal.aborted) await sse.done();
          else sse.end();
        } catch (err) {
          request.log.error({ err, requestId: request.id }, "stream failed after it began");
          await sse.fail(streamErrorBody(err));
        }
      } finally {
        // Whatever ended the stream (client gone, writer cut off, error), the generation stops.
        await iterator.return?.(undefined);
      }
    } catch (err) {
      status = err instanceof ServiceError ? err.status : 500;
      throw err;
    } finally {
      // A request cut short is still charged for what it consumed.
      await metered.finish({
        status,
        usage: usage ?? prepared.progress,
        latencyMs: performance.now() - request.startedAt,
      });
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
