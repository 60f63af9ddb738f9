import type { Principal } from "../../auth/principal.js";
import { invalidRequest, notFound, ServiceError, unsupportedParameter } from "../../core/errors.js";
import type { RequestPriority } from "../../core/generation.js";
import type { IdGenerator } from "../../core/ids.js";
import { collectGeneration, type Generation, type GenerationService } from "../../generation/service.js";
import type { ConversationRepository, ResponseRepository } from "../../storage/repositories/types.js";
import { toRow } from "../conversations/routes.js";
import { ResponseBuilder, type ResponseEvent, type ResponseMeta } from "./encode.js";
import {
  type FileSearchDeps,
  type FileSearchOutcome,
  fileSearchEvents,
  runFileSearch,
} from "./file-search.js";
import type { CreateResponseRequest } from "./schema.js";
import {
  checkCallOutputs,
  type StoredItem,
  toChatMessages,
  toGenerationRequest,
  toStoredItems,
  withFreshIds,
} from "./service.js";

/** How far back a previous_response_id chain is followed. */
const MAX_CHAIN = 512;
/** Items of a conversation given to a response (more than any context holds). */
const MAX_CONVERSATION_ITEMS = 10_000;

export interface ResponseTurnOptions {
  generation: GenerationService;
  /** Where stored responses live; without one, `store: true` is refused. */
  responses: ResponseRepository | undefined;
  /** Conversations a response may continue (`conversation`). */
  conversations: ConversationRepository | undefined;
  ids: IdGenerator;
  now: () => number;
  /** Vector stores, for the file_search tool; without them that tool is refused. */
  fileSearch?: FileSearchDeps;
}

/** One POST /v1/responses as its caller asked for it, whoever the caller is (a route, a batch line). */
export interface ResponseTurnCall {
  principal: Principal;
  body: CreateResponseRequest;
  /** For usage records ("responses", "batch"). */
  endpoint: string;
  priority?: RequestPriority;
  startedAt?: number;
  telemetry?: Parameters<GenerationService["start"]>[0]["telemetry"];
}

/** A response being made: its id and settings, what it adds to its conversation, and how it is saved. */
export interface ResponseTurn {
  meta: ResponseMeta;
  input: StoredItem[];
  /** The whole context: earlier turns (a chain or a conversation), then this request's input. */
  items: StoredItem[];
  /**
   * Starts the generation (dropping the oldest items first while they do not fit, with truncation
   * auto); `signal` stops it.
   */
  start(signal: AbortSignal): Promise<Generation>;
  /**
   * After start(): the file_search call (when the request has that tool) added to the response
   * being built, before the model's output; the events that say so, for streams.
   */
  addSearch(builder: ResponseBuilder): ResponseEvent[];
  /** Stores the response (when `store`) and adds a finished turn to its conversation. */
  save(response: { output: unknown; status: string }): Promise<void>;
}

/**
 * What every way of creating a response shares, with no HTTP in it: the store and background rules,
 * the conversation a request continues, starting the generation, and saving the result.
 */
export class ResponseTurns {
  constructor(private readonly options: ResponseTurnOptions) {}

  get store(): ResponseRepository | undefined {
    return this.options.responses;
  }

  /** Whether the response will be stored; refuses what cannot be honoured (store without a database). */
  checkStorage(body: CreateResponseRequest): boolean {
    const stored = body.store ?? true;
    if (stored && !this.options.responses) {
      throw invalidRequest("This server has no database to store responses in; send store: false.", "store");
    }
    if (body.background && !stored) {
      throw invalidRequest("A background response must be stored: leave store on.", "background");
    }
    return stored;
  }

  /** This request's items after the conversation it continues (a chain or a conversation). */
  async conversation(principal: Principal, body: CreateResponseRequest) {
    const conversationId = conversationIdOf(body);
    const earlier = body.previous_response_id
      ? await this.chainItems(principal, body.previous_response_id)
      : conversationId
        ? await this.conversationItems(principal, conversationId)
        : [];
    const input = toStoredItems(body.input);
    const items = [...earlier, ...input];
    checkCallOutputs(items, earlier.length);
    return { input, items };
  }

  /** Prepares a response: checks, reads its conversation, and gives it an id. */
  async begin(call: ResponseTurnCall): Promise<ResponseTurn> {
    const { principal, body } = call;
    const stored = this.checkStorage(body);
    const { input, items } = await this.conversation(principal, body);
    const createdAtMs = this.options.now();
    const meta: ResponseMeta = {
      id: this.options.ids.response(),
      createdAt: Math.floor(createdAtMs / 1000),
      model: body.model,
      request: body,
      store: stored,
    };
    const startOn = (signal: AbortSignal, context: readonly StoredItem[]) =>
      this.options.generation.start({
        principal,
        endpoint: call.endpoint,
        capability: "chat",
        model: body.model,
        toRequest: (deployment) =>
          toGenerationRequest(body, deployment.id, toChatMessages(context, body.instructions)),
        signal,
        priority: call.priority,
        startedAt: call.startedAt,
        telemetry: call.telemetry,
      });
    let searched: FileSearchOutcome | undefined;
    return {
      meta,
      input,
      items,
      start: async (signal) => {
        // The file_search tool runs before the model; its excerpts join the model's context.
        searched = await runFileSearch(this.options.fileSearch, principal, body, items, signal);
        const context = searched ? searched.withContext(items) : items;
        return body.truncation === "auto"
          ? startTruncated(context, (trimmed) => startOn(signal, trimmed))
          : startOn(signal, context);
      },
      addSearch: (builder) =>
        searched ? builder.addHosted(searched.item, searched.annotations, fileSearchEvents) : [],
      save: (response) => this.save(principal, body, meta, input, createdAtMs, response),
    };
  }

  /**
   * A response made and collected to its end (not streamed, not in the background), then saved:
   * the response object. `onStarted` sees the generation once it is admitted (its hints).
   */
  async collect(
    call: ResponseTurnCall,
    signal: AbortSignal,
    onStarted?: (generation: Generation) => void,
  ): Promise<object> {
    return this.collectTurn(await this.begin(call), signal, onStarted);
  }

  /** collect() for a turn begun already. */
  async collectTurn(
    turn: ResponseTurn,
    signal: AbortSignal,
    onStarted?: (generation: Generation) => void,
  ): Promise<object> {
    const generation = await turn.start(signal);
    onStarted?.(generation);
    const builder = new ResponseBuilder(turn.meta, generation.request.logprobs !== undefined);
    turn.addSearch(builder);
    const response = await collectGeneration(generation, signal, (parts) => {
      for (const part of parts) builder.add(part);
      return builder.snapshot(builder.status, Math.floor(this.options.now() / 1000));
    });
    await turn.save(response);
    return response;
  }

  private async save(
    principal: Principal,
    body: CreateResponseRequest,
    meta: ResponseMeta,
    input: StoredItem[],
    createdAtMs: number,
    response: { output: unknown; status: string },
  ): Promise<void> {
    const { responses, conversations } = this.options;
    const finished = response.status !== "queued" && response.status !== "in_progress";
    const conversationId = conversationIdOf(body);
    // A conversation gets this turn's input and output, stored response or not.
    if (finished && conversationId && conversations && response.status !== "failed") {
      const added = [...withFreshIds(input), ...(response.output as StoredItem[])];
      await conversations.append(principal.projectId, conversationId, added.map(toRow));
    }
    if (!meta.store || !responses) return;
    await responses.save({
      id: meta.id,
      projectId: principal.projectId,
      createdAt: createdAtMs,
      previousResponseId: body.previous_response_id ?? null,
      status: response.status,
      heartbeatAt: finished ? null : this.options.now(),
      responseJson: JSON.stringify(response),
      inputJson: JSON.stringify(input),
    });
  }

  private async chainItems(principal: Principal, id: string): Promise<StoredItem[]> {
    const store = this.options.responses;
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

  private async conversationItems(principal: Principal, id: string): Promise<StoredItem[]> {
    const conversations = this.options.conversations;
    const found = conversations ? await conversations.get(principal.projectId, id) : undefined;
    if (!conversations || !found) {
      throw notFound(`Conversation with id '${id}' not found.`, "not_found", "conversation");
    }
    const rows = await conversations.listItems(principal.projectId, id, {
      order: "asc",
      limit: MAX_CONVERSATION_ITEMS,
    });
    return rows.map((row) => JSON.parse(row.itemJson) as StoredItem);
  }
}

export function conversationIdOf(body: CreateResponseRequest): string | undefined {
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
