import type { FastifyInstance } from "fastify";
import type { Principal } from "../../auth/principal.js";
import { invalidRequest, notFound, ServiceError, unsupportedParameter } from "../../core/errors.js";
import type { IdGenerator } from "../../core/ids.js";
import { collectGeneration, type GenerationService } from "../../generation/service.js";
import { streamErrorBody } from "../../http/errors.js";
import { type StreamEnding, streamGeneration } from "../../http/generation-stream.js";
import { requestAbortSignal } from "../../http/request-context.js";
import type { SseWriter } from "../../http/sse.js";
import { parseBody } from "../../http/validation.js";
import type { ConversationRepository, ResponseRepository } from "../../storage/repositories/types.js";
import { toRow } from "../conversations/routes.js";
import { EventSequencer, ResponseBuilder, type ResponseEvent, type ResponseMeta } from "./encode.js";
import { type CreateResponseRequest, createResponseSchema, inputItemsQuerySchema } from "./schema.js";
import {
  checkCallOutputs,
  rejectUnsupported,
  type StoredItem,
  toChatMessages,
  toGenerationRequest,
  toStoredItems,
  withFreshIds,
} from "./service.js";

export interface ResponseRouteOptions {
  generation: GenerationService;
  /** Where stored responses live; without one, `store: true` is refused. */
  responses: ResponseRepository | undefined;
  /** Conversations a response may continue (`conversation`). */
  conversations: ConversationRepository | undefined;
  ids: IdGenerator;
  now: () => number;
  shutdown: AbortSignal;
}

/** How far back a previous_response_id chain is followed. */
const MAX_CHAIN = 512;
/** Items of a conversation given to a response (more than any context holds). */
const MAX_CONVERSATION_ITEMS = 10_000;

/** POST /v1/responses and the stored responses' routes. */
export async function responseRoutes(app: FastifyInstance, opts: ResponseRouteOptions): Promise<void> {
  const store = opts.responses;

  /** This request's items after the conversation it continues (a chain or a conversation). */
  async function conversation(principal: Principal, body: CreateResponseRequest) {
    const conversationId = conversationIdOf(body);
    const earlier = body.previous_response_id
      ? await chainItems(principal, body.previous_response_id)
      : conversationId
        ? await conversationItems(principal, conversationId)
        : [];
    const input = toStoredItems(body.input);
    const items = [...earlier, ...input];
    checkCallOutputs(items, earlier.length);
    return { input, items };
  }

  async function chainItems(principal: Principal, id: string): Promise<StoredItem[]> {
    if (!store) throw unsupportedParameter("previous_response_id", "This server stores no responses.");
    const turns: StoredItem[][] = [];
    let next: string | null = id;
    while (next && turns.length < MAX_CHAIN) {
      const found = await store.get(principal.projectId, next);
      if (!found) {
        // The one named must exist; an older one deleted since only shortens the conversation.
        if (turns.length === 0) {
          throw notFound(`Previous response with id '${id}' not found.`, "not_found", "previous_response_id");
        }
        break;
      }
      const response = JSON.parse(found.responseJson) as { output: StoredItem[] };
      turns.push([...(JSON.parse(found.inputJson) as StoredItem[]), ...response.output]);
      next = found.previousResponseId;
    }
    return turns.reverse().flat();
  }

  async function conversationItems(principal: Principal, id: string): Promise<StoredItem[]> {
    const found = opts.conversations ? await opts.conversations.get(principal.projectId, id) : undefined;
    if (!opts.conversations || !found) {
      throw notFound(`Conversation with id '${id}' not found.`, "not_found", "conversation");
    }
    const rows = await opts.conversations.listItems(principal.projectId, id, {
      order: "asc",
      limit: MAX_CONVERSATION_ITEMS,
    });
    return rows.map((row) => JSON.parse(row.itemJson) as StoredItem);
  }

  app.post("/v1/responses/input_tokens", async (request) => {
    const body = parseBody(createResponseSchema, request.body);
    rejectUnsupported(body);
    const { items } = await conversation(request.principal, body);
    const counted = await opts.generation.countInputTokens({
      principal: request.principal,
      endpoint: "responses",
      capability: "chat",
      model: body.model,
      toRequest: (deployment) =>
        toGenerationRequest(body, deployment.id, toChatMessages(items, body.instructions)),
    });
    return { object: "response.input_tokens", input_tokens: counted.tokens };
  });

  app.post("/v1/responses", async (request, reply) => {
    const body = parseBody(createResponseSchema, request.body);
    rejectUnsupported(body);
    const stored = body.store ?? true;
    if (stored && !store) {
      throw invalidRequest("This server has no database to store responses in; send store: false.", "store");
    }
    const { input, items } = await conversation(request.principal, body);
    const signal = requestAbortSignal(reply, opts.shutdown);
    request.telemetry.stream = body.stream === true;
    const start = (context: readonly StoredItem[]) =>
      opts.generation.start({
        principal: request.principal,
        endpoint: "responses",
        capability: "chat",
        model: body.model,
        toRequest: (deployment) =>
          toGenerationRequest(body, deployment.id, toChatMessages(context, body.instructions)),
        signal,
        startedAt: request.startedAt,
        telemetry: request.telemetry,
      });
    const generation = body.truncation === "auto" ? await startTruncated(items, start) : await start(items);
    reply.headers(generation.hints);
    const createdAtMs = opts.now();
    const meta: ResponseMeta = {
      id: opts.ids.response(),
      createdAt: Math.floor(createdAtMs / 1000),
      model: body.model,
      request: body,
      store: stored,
    };
    const builder = new ResponseBuilder(meta, generation.request.logprobs !== undefined);
    const conversationId = conversationIdOf(body);
    const save = async (response: { output: unknown }) => {
      // A conversation gets this turn's input and output, stored response or not.
      if (conversationId && opts.conversations) {
        const added = [...withFreshIds(input), ...(response.output as StoredItem[])];
        await opts.conversations.append(request.principal.projectId, conversationId, added.map(toRow));
      }
      if (!stored || !store) return;
      await store.save({
        id: meta.id,
        projectId: request.principal.projectId,
        createdAt: createdAtMs,
        previousResponseId: body.previous_response_id ?? null,
        responseJson: JSON.stringify(response),
        inputJson: JSON.stringify(input),
      });
    };
    const finished = () => builder.snapshot(builder.status, Math.floor(opts.now() / 1000));

    if (!body.stream) {
      const response = await collectGeneration(generation, signal, async (parts) => {
        for await (const part of parts) builder.add(part);
        return finished();
      });
      await save(response);
      return reply.send(response);
    }

    const sequencer = new EventSequencer();
    const send = async (sse: SseWriter, event: ResponseEvent) => {
      const frame = sequencer.frame(event);
      await sse.sendEvent(frame.name, frame.json);
    };
    const ending: StreamEnding = {
      done: async (sse) => sse.end(),
      fail: async (sse, err) => {
        const { error } = streamErrorBody(err);
        await send(sse, { type: "error", code: error.code, message: error.message, param: error.param });
        sse.end();
      },
    };
    await streamGeneration(
      request,
      reply,
      generation,
      signal,
      async (first, rest, sse) => {
        await send(sse, { type: "response.created", response: builder.snapshot("in_progress", null) });
        await send(sse, { type: "response.in_progress", response: builder.snapshot("in_progress", null) });
        let part = first;
        while (part && sse.isOpen) {
          for (const event of builder.add(part)) await send(sse, event);
          const next = await rest.next();
          part = next.done ? undefined : next.value;
        }
        if (!sse.isOpen || signal.aborted) return;
        const response = finished();
        await save(response);
        const type = response.status === "incomplete" ? "response.incomplete" : "response.completed";
        await send(sse, { type, response });
      },
      ending,
    );
  });

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    "/v1/responses/:id",
    async (request) => {
      if (request.query.stream === "true" || request.query.starting_after !== undefined) {
        throw unsupportedParameter(
          "stream",
          "Streaming a stored response again needs background responses, which this server does not run yet.",
        );
      }
      const found = await stored(request.principal, request.params.id);
      return JSON.parse(found.responseJson);
    },
  );

  app.delete<{ Params: { id: string } }>("/v1/responses/:id", async (request) => {
    const id = request.params.id;
    if (!store || !(await store.delete(request.principal.projectId, id))) throw responseNotFound(id);
    return { id, object: "response", deleted: true };
  });

  app.post<{ Params: { id: string } }>("/v1/responses/:id/cancel", async (request) => {
    await stored(request.principal, request.params.id);
    throw invalidRequest("Only background responses can be cancelled, and this server runs none.", null);
  });

  app.get<{ Params: { id: string } }>("/v1/responses/:id/input_items", async (request) => {
    const query = parseBody(inputItemsQuerySchema, request.query);
    const found = await stored(request.principal, request.params.id);
    const items = JSON.parse(found.inputJson) as StoredItem[];
    const ordered = query.order === "asc" ? items : [...items].reverse();
    let start = 0;
    if (query.after) {
      const at = ordered.findIndex((item) => item.id === query.after);
      if (at < 0) throw invalidRequest(`No input item with id '${query.after}' in this response.`, "after");
      start = at + 1;
    }
    const limit = query.limit ?? 20;
    const data = ordered.slice(start, start + limit);
    return {
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: start + limit < ordered.length,
    };
  });

  async function stored(principal: Principal, id: string) {
    const found = store ? await store.get(principal.projectId, id) : undefined;
    if (!found) throw responseNotFound(id);
    return found;
  }
}

function conversationIdOf(body: CreateResponseRequest): string | undefined {
  const conversation = body.conversation;
  if (conversation == null) return undefined;
  return typeof conversation === "string" ? conversation : conversation.id;
}

/**
 * truncation: "auto": while the conversation does not fit the model's context, the oldest items
 * go (a call's output never outlives its call at the front). Each try renders and counts again,
 * which only a conversation that does not fit pays for.
 */
async function startTruncated<T>(
  items: readonly StoredItem[],
  start: (context: readonly StoredItem[]) => Promise<T>,
): Promise<T> {
  let context = items;
  for (;;) {
    try {
      return await start(context);
    } catch (err) {
      const tooLong = err instanceof ServiceError && err.code === "context_length_exceeded";
      if (!tooLong || context.length <= 1) throw err;
      let drop = 1;
      while (drop < context.length - 1 && context[drop]?.type === "function_call_output") drop++;
      context = context.slice(drop);
    }
  }
}

/** Another project's response is answered exactly as one that does not exist. */
function responseNotFound(id: string) {
  return notFound(`No response found with id '${id}'.`, "not_found");
}
