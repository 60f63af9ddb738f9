import type { Principal } from "../../auth/principal.js";
import { unsupportedParameter } from "../../core/errors.js";
import type { IdGenerator } from "../../core/ids.js";
import { collectGeneration, type GenerationService } from "../../generation/service.js";
import { parseBody } from "../../http/validation.js";
import type { StoredBatch } from "../../storage/repositories/types.js";
import { collectChatCompletion } from "../chat/encode.js";
import { chatRequestSchema } from "../chat/schema.js";
import { toGenerationRequest as toChatRequest } from "../chat/service.js";
import { collectCompletion } from "../completions/encode.js";
import { completionRequestSchema } from "../completions/schema.js";
import { toGenerationRequest as toCompletionRequest } from "../completions/service.js";
import { encodeEmbeddings } from "../embeddings/encode.js";
import { embeddingRequestSchema } from "../embeddings/schema.js";
import { toEmbeddingRequest } from "../embeddings/service.js";
import type { ResponseTurns } from "../responses/response-turns.js";
import { createResponseSchema } from "../responses/schema.js";
import {
  rejectUnsupported,
  toChatMessages,
  toGenerationRequest as toResponseRequest,
  toStoredItems,
} from "../responses/service.js";
import type { BatchEndpoint } from "./schema.js";

export interface LineContext {
  generation: GenerationService;
  /** How /v1/responses lines are made and stored, as the route makes them. */
  responses: ResponseTurns;
  ids: IdGenerator;
  now: () => number;
  maxN: number;
  /** The longest line of an input file: as long as a request body may be (body_limit_bytes). */
  maxLineBytes: number;
}

/** The creator's access as it was when the batch was made: every line runs as that caller. */
export function callerOf(batch: StoredBatch): Principal {
  return {
    projectId: batch.projectId,
    keyId: batch.caller.keyId,
    role: "member",
    allowedModels: batch.caller.allowedModels,
    keyLimits: batch.caller.keyLimits,
    projectLimits: batch.caller.projectLimits,
  };
}

/** What a line's request would have answered over HTTP. */
export interface LineResponse {
  statusCode: number;
  body: unknown;
}

/** What checking a line found: its model, and (embeddings) how many inputs it holds. */
export interface CheckedLine {
  model: string;
  embeddingInputs: number;
}

/**
 * Checks a line's body as its endpoint would (schema, field rules, the model and the caller's
 * access to it), without running it. Throws the request's 400/404.
 */
export function checkLineBody(
  context: LineContext,
  principal: Principal,
  endpoint: BatchEndpoint,
  body: unknown,
): CheckedLine {
  switch (endpoint) {
    case "/v1/chat/completions": {
      const req = parseBody(chatRequestSchema, body);
      noStreaming(req.stream);
      toChatRequest(req, req.model, { maxN: context.maxN });
      context.generation.checkModel(principal, req.model, "chat");
      return { model: req.model, embeddingInputs: 0 };
    }
    case "/v1/completions": {
      const req = parseBody(completionRequestSchema, body);
      noStreaming(req.stream);
      toCompletionRequest(req, req.model, { maxN: context.maxN });
      context.generation.checkModel(principal, req.model, "completions");
      return { model: req.model, embeddingInputs: 0 };
    }
    case "/v1/embeddings": {
      const req = parseBody(embeddingRequestSchema, body);
      const mapped = toEmbeddingRequest(req, req.model);
      context.generation.checkModel(principal, req.model, "embeddings");
      const inputs = mapped.input.kind === "text" ? mapped.input.texts.length : mapped.input.tokens.length;
      return { model: req.model, embeddingInputs: inputs };
    }
    case "/v1/responses": {
      const req = parseBody(createResponseSchema, body);
      noStreaming(req.stream);
      // The batch is what runs in the background; a line is answered in its output file.
      if (req.background === true)
        throw unsupportedParameter("background", "Batch requests run in the batch: leave out background.");
      rejectUnsupported(req);
      context.responses.checkStorage(req);
      // The fields are checked against the line's own input; a previous response or a conversation
      // it continues is read when the line runs (and a missing one answers that line with a 404).
      toResponseRequest(req, req.model, toChatMessages(toStoredItems(req.input), req.instructions));
      context.generation.checkModel(principal, req.model, "chat");
      return { model: req.model, embeddingInputs: 0 };
    }
  }
}

function noStreaming(stream: boolean | null | undefined): void {
  // A batch collects whole responses; a streamed one has nowhere to go.
  if (stream === true)
    throw unsupportedParameter("stream", "Batch requests cannot stream: leave out stream.");
}

/**
 * Runs one line through the generation service, as its endpoint's route would, at batch
 * priority: behind interactive requests for slots and for deployments' rate caps.
 */
export async function runLine(
  context: LineContext,
  principal: Principal,
  endpoint: BatchEndpoint,
  body: unknown,
  signal: AbortSignal,
): Promise<LineResponse> {
  const created = Math.floor(context.now() / 1000);
  switch (endpoint) {
    case "/v1/chat/completions": {
      const req = parseBody(chatRequestSchema, body);
      const generation = await context.generation.start({
        principal,
        endpoint: "batch",
        capability: "chat",
        model: req.model,
        toRequest: (deployment) => toChatRequest(req, deployment.id, { maxN: context.maxN }),
        signal,
        priority: "batch",
      });
      const meta = {
        id: context.ids.chatCompletion(),
        created,
        model: req.model,
        systemFingerprint: generation.deployment.systemFingerprint,
      };
      const wantLogprobs = generation.request.logprobs !== undefined;
      const result = await collectGeneration(generation, signal, (parts) =>
        collectChatCompletion(parts, meta, generation.request.n, wantLogprobs),
      );
      return { statusCode: 200, body: result.body };
    }
    case "/v1/completions": {
      const req = parseBody(completionRequestSchema, body);
      let shape: ReturnType<typeof toCompletionRequest>["shape"] | undefined;
      const generation = await context.generation.start({
        principal,
        endpoint: "batch",
        capability: "completions",
        model: req.model,
        toRequest: (deployment) => {
          const mapped = toCompletionRequest(req, deployment.id, { maxN: context.maxN });
          shape = mapped.shape;
          return mapped.request;
        },
        signal,
        priority: "batch",
      });
      const meta = {
        id: context.ids.completion(),
        created,
        model: req.model,
        systemFingerprint: generation.deployment.systemFingerprint,
      };
      const result = await collectGeneration(generation, signal, (parts) =>
        collectCompletion(parts, meta, shape as NonNullable<typeof shape>),
      );
      return { statusCode: 200, body: result.body };
    }
    case "/v1/embeddings": {
      const req = parseBody(embeddingRequestSchema, body);
      const embeddings = await context.generation.embed({
        principal,
        endpoint: "batch",
        model: req.model,
        toRequest: (deployment) => toEmbeddingRequest(req, deployment.id),
        signal,
        priority: "batch",
      });
      return {
        statusCode: 200,
        body: encodeEmbeddings(embeddings.result, req.model, req.encoding_format ?? "float"),
      };
    }
    case "/v1/responses": {
      const req = parseBody(createResponseSchema, body);
      const response = await context.responses.collect(
        { principal, body: req, endpoint: "batch", priority: "batch" },
        signal,
      );
      return { statusCode: 200, body: response };
    }
  }
}
