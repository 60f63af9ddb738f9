import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Principal } from "../../auth/principal.js";
import { invalidRequest, notFound, serviceUnavailable } from "../../core/errors.js";
import type { IdGenerator } from "../../core/ids.js";
import type { Generation, GenerationService } from "../../generation/service.js";
import { streamErrorBody } from "../../http/errors.js";
import { type StreamEnding, streamGeneration } from "../../http/generation-stream.js";
import { openEventStream, requestAbortSignal } from "../../http/request-context.js";
import type { SseWriter } from "../../http/sse.js";
import { parseBody } from "../../http/validation.js";
import type { ConversationRepository, ResponseRepository } from "../../storage/repositories/types.js";
import { type BackgroundRun, BackgroundRuns } from "./background-runs.js";
import {
  EventSequencer,
  ResponseBuilder,
  type ResponseErrorObject,
  type ResponseEvent,
  type ResponseMeta,
} from "./encode.js";
import type { FileSearchDeps } from "./file-search.js";
import { type ResponseTurn, ResponseTurns } from "./response-turns.js";
import { createResponseSchema, inputItemsQuerySchema } from "./schema.js";
import { rejectUnsupported, type StoredItem, toChatMessages, toGenerationRequest } from "./service.js";

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

/** POST /v1/responses and the stored responses' routes. */
export async function responseRoutes(app: FastifyInstance, opts: ResponseRouteOptions): Promise<void> {
  const store = opts.responses;
  const turns = new ResponseTurns(opts);
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

  app.post("/v1/responses/input_tokens", async (request) => {
    const body = parseBody(createResponseSchema, request.body);
    rejectUnsupported(body);
    const { items } = await turns.conversation(request.principal, body);
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
    request.telemetry.stream = body.stream === true;
    const turn = await turns.begin({
      principal: request.principal,
      body,
      endpoint: "responses",
      startedAt: request.startedAt,
      telemetry: request.telemetry,
    });
    const { meta } = turn;
    const run = body.background ? runs?.start(meta.id) : undefined;
    // A background response runs on whatever the client does; only cancel and shutdown stop it.
    const signal = run
      ? anySignal(run.abort.signal, opts.shutdown)
      : requestAbortSignal(reply, opts.shutdown);

    if (run && runs) {
      const queued = new ResponseBuilder(meta, false).snapshot("queued", null);
      await turn.save(queued);
      void runInBackground(meta, run, signal, turn).finally(() => runs.finished(meta.id));
      if (!body.stream) return reply.send(queued);
      return streamRun(request, reply, run, -1);
    }

    if (!body.stream) {
      const response = await turns.collectTurn(turn, signal, (generation) => reply.headers(generation.hints));
      return reply.send(response);
    }

    const generation = await turn.start(signal);
    reply.headers(generation.hints);
    const builder = new ResponseBuilder(meta, generation.request.logprobs !== undefined);
    const hostedEvents = turn.addSearch(builder);
    const finished = () => builder.snapshot(builder.status, Math.floor(opts.now() / 1000));
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
        await turn.save(response);
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
    turn: ResponseTurn,
  ): Promise<void> {
    const save = turn.save;
    const sequencer = new EventSequencer();
    const emit = (event: ResponseEvent) => {
      const frame = sequencer.frame(event);
      run.push(frame);
    };
    let builder = new ResponseBuilder(meta, false);
    emit({ type: "response.created", response: builder.snapshot("queued", null) });
    let generation: Generation | undefined;
    try {
      generation = await turn.start(signal);
      builder = new ResponseBuilder(meta, generation.request.logprobs !== undefined);
      const hosted = turn.addSearch(builder);
      const running = builder.snapshot("in_progress", null);
      await save(running);
      emit({ type: "response.in_progress", response: running });
      for (const event of hosted) emit(event);
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
    const sse = openEventStream(request, reply);
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
