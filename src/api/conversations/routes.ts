import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Principal } from "../../auth/principal.js";
import { notFound } from "../../core/errors.js";
import { randomId } from "../../core/ids.js";
import { parseBody } from "../../http/validation.js";
import type { Conversation, ConversationRepository } from "../../storage/repositories/types.js";
import { metadataSchema } from "../common-fields.js";
import { encodePage } from "../files/encode.js";
import { inputItemSchema } from "../responses/schema.js";
import { type StoredItem, toConversationItems } from "../responses/service.js";

export interface ConversationRouteOptions {
  conversations: ConversationRepository;
  now: () => number;
}

const metadata = metadataSchema;
const items = z.array(inputItemSchema).max(20, "at most 20 items at a time");

const createSchema = z.strictObject({ items: items.nullish(), metadata: metadata.nullish() });
const updateSchema = z.strictObject({ metadata });
const addItemsSchema = z.strictObject({ items: items.min(1) });
const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).optional(),
  order: z.enum(["asc", "desc"]).optional(),
  after: z.string().min(1).max(256).optional(),
  include: z.union([z.string(), z.array(z.string())]).optional(),
});

type IdParams = { Params: { id: string } };
type ItemParams = { Params: { id: string; itemId: string } };

/** /v1/conversations: a conversation is an ordered list of items a response can continue. */
export async function conversationRoutes(
  app: FastifyInstance,
  opts: ConversationRouteOptions,
): Promise<void> {
  const store = opts.conversations;

  async function found(principal: Principal, id: string): Promise<Conversation> {
    const conversation = await store.get(principal.projectId, id);
    if (!conversation) throw notFound(`Conversation with id '${id}' not found.`, "not_found");
    return conversation;
  }

  app.post("/v1/conversations", async (request) => {
    const body = parseBody(createSchema, request.body ?? {});
    const conversation: Conversation = {
      id: `conv_${randomId()}`,
      projectId: request.principal.projectId,
      createdAt: opts.now(),
      metadataJson: JSON.stringify(body.metadata ?? {}),
    };
    await store.create(conversation, toConversationItems(body.items ?? []).map(toRow));
    return encodeConversation(conversation);
  });

  app.get<IdParams>("/v1/conversations/:id", async (request) =>
    encodeConversation(await found(request.principal, request.params.id)),
  );

  app.post<IdParams>("/v1/conversations/:id", async (request) => {
    const body = parseBody(updateSchema, request.body);
    await found(request.principal, request.params.id);
    const updated = await store.updateMetadata(
      request.principal.projectId,
      request.params.id,
      JSON.stringify(body.metadata),
    );
    return encodeConversation(updated as Conversation);
  });

  app.delete<IdParams>("/v1/conversations/:id", async (request) => {
    const { id } = request.params;
    if (!(await store.delete(request.principal.projectId, id))) {
      throw notFound(`Conversation with id '${id}' not found.`, "not_found");
    }
    return { id, object: "conversation.deleted", deleted: true };
  });

  app.post<IdParams>("/v1/conversations/:id/items", async (request) => {
    const body = parseBody(addItemsSchema, request.body);
    await found(request.principal, request.params.id);
    const added = toConversationItems(body.items);
    await store.append(request.principal.projectId, request.params.id, added.map(toRow));
    return {
      object: "list",
      data: added,
      first_id: added[0]?.id,
      last_id: added.at(-1)?.id,
      has_more: false,
    };
  });

  app.get<IdParams>("/v1/conversations/:id/items", async (request) => {
    const query = parseBody(listQuery, request.query);
    await found(request.principal, request.params.id);
    const limit = query.limit ?? 20;
    const rows = await store.listItems(request.principal.projectId, request.params.id, {
      order: query.order ?? "desc",
      ...(query.after ? { after: query.after } : {}),
      limit: limit + 1,
    });
    return encodePage(
      rows,
      limit,
      (row) => JSON.parse(row.itemJson) as StoredItem,
      (row) => row.id,
    );
  });

  app.get<ItemParams>("/v1/conversations/:id/items/:itemId", async (request) => {
    await found(request.principal, request.params.id);
    const item = await store.getItem(request.principal.projectId, request.params.id, request.params.itemId);
    if (!item) throw notFound(`Item with id '${request.params.itemId}' not found.`, "not_found");
    return JSON.parse(item.itemJson);
  });

  app.delete<ItemParams>("/v1/conversations/:id/items/:itemId", async (request) => {
    const conversation = await found(request.principal, request.params.id);
    const { projectId } = request.principal;
    if (!(await store.deleteItem(projectId, request.params.id, request.params.itemId))) {
      throw notFound(`Item with id '${request.params.itemId}' not found.`, "not_found");
    }
    return encodeConversation(conversation);
  });
}

export function toRow(item: StoredItem) {
  return { id: item.id, itemJson: JSON.stringify(item) };
}

function encodeConversation(conversation: Conversation) {
  return {
    id: conversation.id,
    object: "conversation",
    created_at: Math.floor(conversation.createdAt / 1000),
    metadata: JSON.parse(conversation.metadataJson),
  };
}
