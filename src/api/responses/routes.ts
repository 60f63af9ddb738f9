import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Principal } from "../../auth/principal.js";
import {
  invalidRequest,
  notFound,
  ServiceError,
  serviceUnavailable,
  unsupportedParameter,
} from "../../core/errors.js";
import type { IdGenerator } from "../../core/ids.js";
import { collectGeneration, type Generation, type GenerationService } from "../../generation/service.js";
import { streamErrorBody } from "../../http/errors.js";
import { type StreamEnding, streamGeneration } from "../../http/generation-stream.js";
import { pendingHeaders, requestAbortSignal } from "../../http/request-context.js";
import { SseWriter } from "../../http/sse.js";
import { parseBody } from "../../http/validation.js";
import type { ConversationRepository, ResponseRepository } from "../../storage/repositories/types.js";
import { toRow } from "../conversations/routes.js";
import { type BackgroundRun, BackgroundRuns } from "./background-runs.js";
import {
  EventSequencer,
  ResponseBuilder,
  type ResponseErrorObject,
  type ResponseEvent,
  type ResponseMeta,
} from "./encode.js";
import {
  type FileSearchDeps,
  type FileSearchOutcome,
  fileSearchEvents,
  runFileSearch,
} from "./file-search.js";
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
  /** Whether this instance is the database's only user (SQLite): then, at start-up, every unfinished background response is known to be orphaned. */
  soleInstance: boolean;
  generation: GenerationService;
  /** Where stored responses live; without one, `store: true` is refused. */
  responses: ResponseRepository | undefined;
  /** Conversations a response may continue (`conversation`). */
  conversations: ConversationRepository | undefined;
  ids: IdGenerator;
  now: () => number;
  shutdown: AbortSignal;
  /** Vector stores, for the file_search tool; without them that tool is refused. */
  fileSearch?: FileSearchDeps;
}

/** How far back a previous_response_id chain is followed. */
const MAX_CHAIN = 512;
/** Items of a conversation given to a response (more than any context holds). */
const MAX_CONVERSATION_ITEMS = 10_000;

/** POST /v1/responses and the stored responses' routes. */
export async function responseRoutes(app: FastifyInstance, opts: ResponseRouteOptions): Promise<void> {
  const store = opts.responses;
  const runs =
    store &&
    new BackgroundRuns({
      responses: store,
      now: opts.now,
      heartbeatMs: 10_000,
      staleAfterMs: 45_000,
      soleInstance: opts.soleInstance,
      failOrphan: (json) =>
        JSON.stringify({
          ...(JSON.parse(json) as object),
          status: "failed",
          error: {
            code: "server_error",
            message: "The server running this background response stopped before it finished.",
          },
        }),
      onError: (err) => app.log.error({ err }, "background responses: heartbeat or sweep failed"),
    });
  app.addHook("onClose", async () => runs?.close());
  await runs?.swept;

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
    if (body.background && !stored) {
      throw invalidRequest("A background response must be stored: leave store on.", "background");
    }
    const { input, items } = await conversation(request.principal, body);
    const id = opts.ids.response();
    const run = body.background ? runs?.start(id) : undefined;
    // A background response runs on whatever the client does; only cancel and shutdown stop it.
    const signal = run
      ? anySignal(run.abort.signal, opts.shutdown)
      : requestAbortSignal(reply, opts.shutdown);
    request.telemetry.stream = body.stream === true;
    const principal = request.principal;
    // The file_search tool runs before the model; its excerpts join the model's context.
    const searched = await runFileSearch(opts.fileSearch, principal, body, items, signal);
    const context = searched ? searched.withContext(items) : items;
    const start = (context: readonly StoredItem[]) =>
      opts.generation.start({
        principal,
        endpoint: "responses",
        capability: "chat",
        model: body.model,
        toRequest: (deployment) =>
          toGenerationRequest(body, deployment.id, toChatMessages(context, body.instructions)),
        signal,
        startedAt: request.startedAt,
        telemetry: request.telemetry,
      });
    const createdAtMs = opts.now();
    const meta: ResponseMeta = {
      id,
      createdAt: Math.floor(createdAtMs / 1000),
      model: body.model,
      request: body,
      store: stored,
    };
    const conversationId = conversationIdOf(body);
    const save = async (response: { output: unknown; status: string }) => {
      const finished = response.status !== "queued" && response.status !== "in_progress";
      // A conversation gets this turn's input and output, stored response or not.
      if (finished && conversationId && opts.conversations && response.status !== "failed") {
        const added = [...withFreshIds(input), ...(response.output as StoredItem[])];
        await opts.conversations.append(principal.projectId, conversationId, added.map(toRow));
      }
      if (!stored || !store) return;
      await store.save({
        id: meta.id,
        projectId: principal.projectId,
        createdAt: createdAtMs,
        previousResponseId: body.previous_response_id ?? null,
        status: response.status,
        heartbeatAt: finished ? null : opts.now(),
        responseJson: JSON.stringify(response),
        inputJson: JSON.stringify(input),
      });
    };

    if (run && runs) {
      const queued = new ResponseBuilder(meta, false).snapshot("queued", null);
      await save(queued);
      const begin = () => (body.truncation === "auto" ? startTruncated(context, start) : start(context));
      void runInBackground(meta, run, signal, begin, save, searched).finally(() => runs.finished(id));
      if (!body.stream) return reply.send(queued);
      return streamRun(request, reply, run, -1);
    }

    const generation =
      body.truncation === "auto" ? await startTruncated(context, start) : await start(context);
    reply.headers(generation.hints);
    const builder = new ResponseBuilder(meta, generation.request.logprobs !== undefined);
    const hostedEvents = searched
      ? builder.addHosted(searched.item, searched.annotations, fileSearchEvents)
      : [];
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
        await send(sse, errorEvent(err));
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
        for (const event of hostedEvents) await send(sse, event);
        let part = first;
        while (part && sse.isOpen) {
          for (const event of builder.add(part)) await send(sse, event);
          const next = await rest.next();
          part = next.done ? undefined : next.value;
        }
        if (!sse.isOpen || signal.aborted) return;
        const response = finished();
        await save(response);
        await send(sse, { type: terminalEvent(response.status), response });
      },
      ending,
    );
  });

  /**
   * Runs a background response to its end, recording every event (for streaming, now or later)
   * and saving the response when it is queued, running and finished (failed and cancelled too).
   */
  async function runInBackground(
    meta: ResponseMeta,
    run: BackgroundRun,
    signal: AbortSignal,
    begin: () => Promise<Generation>,
    save: (response: { output: unknown; status: string }) => Promise<void>,
    searched?: FileSearchOutcome,
  ): Promise<void> {
    const sequencer = new EventSequencer();
    const emit = (event: ResponseEvent) => {
      const frame = sequencer.frame(event);
      run.push(frame);
    };
    let builder = new ResponseBuilder(meta, false);
    emit({ type: "response.created", response: builder.snapshot("queued", null) });
    let generation: Generation | undefined;
    try {
      generation = await begin();
      builder = new ResponseBuilder(meta, generation.request.logprobs !== undefined);
      const running = builder.snapshot("in_progress", null);
      await save(running);
      emit({ type: "response.in_progress", response: running });
      if (searched)
        for (const event of builder.addHosted(searched.item, searched.annotations, fileSearchEvents))
          emit(event);
      for await (const part of generation.parts) for (const event of builder.add(part)) emit(event);
      // Parts stop early when cancelled or when shutdown stops waiting: neither is a finished answer.
      if (run.abort.signal.aborted) throw cancelled;
      if (signal.aborted) throw serviceUnavailable("The server stopped before this response finished.");
      const ended = generation;
      generation = undefined;
      await ended.end();
      const response = builder.snapshot(builder.status, Math.floor(opts.now() / 1000));
      await save(response);
      emit({ type: terminalEvent(response.status), response });
    } catch (err) {
      await generation?.end({ error: err });
      const wasCancelled = run.abort.signal.aborted;
      const response = wasCancelled
        ? builder.snapshot("cancelled", null)
        : builder.snapshot("failed", null, failure(err));
      await save(response).catch((e: unknown) =>
        app.log.error({ err: e }, "saving a background response failed"),
      );
      emit(wasCancelled ? { type: "response.cancelled", response } : { type: "response.failed", response });
    }
  }

  /** Streams a background run's events after `after` (its sequence number), following it live. */
  async function streamRun(request: FastifyRequest, reply: FastifyReply, run: BackgroundRun, after: number) {
    const sse = new SseWriter(reply.raw, { headers: pendingHeaders(request, reply) });
    reply.hijack();
    sse.open();
    // Leaving stops the stream, never the run.
    for await (const event of run.follow(after, sse.signal)) {
      if (!sse.isOpen) break;
      await sse.sendEvent(event.name, event.json);
    }
    sse.end();
  }

  app.get<{ Params: { id: string }; Querystring: Record<string, unknown> }>(
    "/v1/responses/:id",
    async (request, reply) => {
      const found = await stored(request.principal, request.params.id);
      if (request.query.stream !== "true") return JSON.parse(found.responseJson);
      const after = request.query.starting_after === undefined ? -1 : Number(request.query.starting_after);
      if (!Number.isInteger(after) || after < -1) {
        throw invalidRequest("starting_after must be a sequence number.", "starting_after");
      }
      const run = runs?.get(found.id);
      if (!run) {
        throw invalidRequest(
          "Only a background response that is running, or ended in the last few minutes on this server, can be streamed; retrieve it without stream.",
          "stream",
        );
      }
      return streamRun(request, reply, run, after);
    },
  );

  app.delete<{ Params: { id: string } }>("/v1/responses/:id", async (request) => {
    const id = request.params.id;
    if (!store || !(await store.delete(request.principal.projectId, id))) throw responseNotFound(id);
    return { id, object: "response", deleted: true };
  });

  app.post<{ Params: { id: string } }>("/v1/responses/:id/cancel", async (request) => {
    const found = await stored(request.principal, request.params.id);
    const response = JSON.parse(found.responseJson) as { background?: boolean };
    if (!response.background) throw invalidRequest("Only background responses can be cancelled.", null);
    const run = runs?.get(found.id);
    if (run && !run.ended) {
      run.abort.abort();
      // The run saves itself as cancelled; answer once it has.
      for await (const _ of run.follow(run.events.length - 1, AbortSignal.timeout(30_000))) {
        // Drained: the run has ended.
      }
    }
    return JSON.parse((await stored(request.principal, request.params.id)).responseJson);
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

const cancelled = new Error("cancelled");

function anySignal(...signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) controller.abort();
    else signal.addEventListener("abort", () => controller.abort(), { once: true });
  }
  return controller.signal;
}

function terminalEvent(status: string): string {
  return status === "incomplete" ? "response.incomplete" : "response.completed";
}

function errorEvent(err: unknown): ResponseEvent {
  const { error } = streamErrorBody(err);
  return { type: "error", code: error.code, message: error.message, param: error.param };
}

/** A failed response's error: a ServiceError's own words; anything else says no more than that. */
function failure(err: unknown): ResponseErrorObject {
  const { error } = streamErrorBody(err);
  return { code: error.code ?? "server_error", message: error.message };
}

/** Another project's response is answered exactly as one that does not exist. */
function responseNotFound(id: string) {
  return notFound(`No response found with id '${id}'.`, "not_found");
}
