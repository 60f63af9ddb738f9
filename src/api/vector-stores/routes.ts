import type { FastifyInstance } from "fastify";
import { requestAbortSignal } from "../../http/request-context.js";
import { parseBody } from "../../http/validation.js";
import type { StoredVectorStore } from "../../storage/repositories/vector-store-types.js";
import { encodePage } from "../files/encode.js";
import {
  encodeFileBatch,
  encodeFileContent,
  encodeSearchPage,
  encodeVectorStore,
  encodeVectorStoreFile,
} from "./encode.js";
import { checkFilter } from "./filters.js";
import {
  createFileBatchSchema,
  createFileSchema,
  createVectorStoreSchema,
  listFilesQuerySchema,
  listQuerySchema,
  searchSchema,
  updateFileSchema,
  updateVectorStoreSchema,
} from "./schema.js";
import type { VectorStoreSearch } from "./search.js";
import type { VectorStoreService } from "./service.js";

export interface VectorStoreRouteOptions {
  service: VectorStoreService;
  search: VectorStoreSearch;
  shutdown: AbortSignal;
}

type Store = { Params: { vector_store_id: string } };
type StoreFile = { Params: { vector_store_id: string; file_id: string } };
type StoreBatch = { Params: { vector_store_id: string; batch_id: string } };

/** /v1/vector_stores: stores, their files and file batches, and search. */
export async function vectorStoreRoutes(app: FastifyInstance, opts: VectorStoreRouteOptions): Promise<void> {
  const { service, search } = opts;
  const encodeStores = async (stores: readonly StoredVectorStore[]) => {
    const usage = stores.length === 0 ? new Map() : await service.usageOf(stores);
    const now = service.now;
    return (store: StoredVectorStore) => encodeVectorStore(store, usage.get(store.id), now);
  };
  const encodeOne = async (store: StoredVectorStore) => (await encodeStores([store]))(store);

  app.post("/v1/vector_stores", async (request) => {
    const body = parseBody(createVectorStoreSchema, request.body);
    return encodeOne(await service.create(request.principal, body));
  });
  app.get("/v1/vector_stores", async (request) => {
    const query = parseBody(listQuerySchema, request.query ?? {});
    const stores = await service.list(request.principal.projectId, query);
    return encodePage(stores, query.limit, await encodeStores(stores.slice(0, query.limit)), (s) => s.id);
  });
  app.get<Store>("/v1/vector_stores/:vector_store_id", async (request) =>
    encodeOne(await service.get(request.principal.projectId, request.params.vector_store_id)),
  );
  app.post<Store>("/v1/vector_stores/:vector_store_id", async (request) => {
    const body = parseBody(updateVectorStoreSchema, request.body);
    return encodeOne(await service.update(request.principal.projectId, request.params.vector_store_id, body));
  });
  app.delete<Store>("/v1/vector_stores/:vector_store_id", async (request) => {
    await service.delete(request.principal.projectId, request.params.vector_store_id);
    return { id: request.params.vector_store_id, object: "vector_store.deleted", deleted: true };
  });

  app.post<Store>("/v1/vector_stores/:vector_store_id/search", async (request, reply) => {
    const body = parseBody(searchSchema, request.body);
    if (body.filters) checkFilter(body.filters, "filters");
    const store = await service.getActive(request.principal.projectId, request.params.vector_store_id);
    const signal = requestAbortSignal(reply, opts.shutdown);
    let queries = typeof body.query === "string" ? [body.query] : body.query;
    if (body.rewrite_query) queries = [await search.rewrite(request.principal, queries.join(" "), signal)];
    const hybrid = body.ranking_options?.hybrid_search;
    const results = await search.search(
      request.principal,
      [store],
      {
        queries,
        maxResults: body.max_num_results ?? 10,
        filters: body.filters,
        ranker: body.ranking_options?.ranker ?? "auto",
        scoreThreshold: body.ranking_options?.score_threshold ?? 0,
        weights: hybrid ? { embedding: hybrid.embedding_weight, text: hybrid.text_weight } : undefined,
        endpoint: "vector_stores.search",
      },
      signal,
    );
    await service.touch(store);
    return encodeSearchPage(queries, results);
  });

  app.post<Store>("/v1/vector_stores/:vector_store_id/files", async (request) => {
    const body = parseBody(createFileSchema, request.body);
    return encodeVectorStoreFile(
      await service.attachFile(request.principal, request.params.vector_store_id, body),
    );
  });
  app.get<Store>("/v1/vector_stores/:vector_store_id/files", async (request) => {
    const query = parseBody(listFilesQuerySchema, request.query ?? {});
    const files = await service.listFiles(request.principal.projectId, request.params.vector_store_id, query);
    return encodePage(files, query.limit, encodeVectorStoreFile, (f) => f.fileId);
  });
  app.get<StoreFile>("/v1/vector_stores/:vector_store_id/files/:file_id", async (request) => {
    const { vector_store_id, file_id } = request.params;
    return encodeVectorStoreFile(
      await service.getFile(request.principal.projectId, vector_store_id, file_id),
    );
  });
  app.post<StoreFile>("/v1/vector_stores/:vector_store_id/files/:file_id", async (request) => {
    const body = parseBody(updateFileSchema, request.body);
    const { vector_store_id, file_id } = request.params;
    const file = await service.updateAttributes(
      request.principal.projectId,
      vector_store_id,
      file_id,
      body.attributes,
    );
    return encodeVectorStoreFile(file);
  });
  app.delete<StoreFile>("/v1/vector_stores/:vector_store_id/files/:file_id", async (request) => {
    const { vector_store_id, file_id } = request.params;
    await service.deleteFile(request.principal.projectId, vector_store_id, file_id);
    return { id: file_id, object: "vector_store.file.deleted", deleted: true };
  });
  app.get<StoreFile>("/v1/vector_stores/:vector_store_id/files/:file_id/content", async (request) => {
    const { vector_store_id, file_id } = request.params;
    return encodeFileContent(
      await service.fileContent(request.principal.projectId, vector_store_id, file_id),
    );
  });

  app.post<Store>("/v1/vector_stores/:vector_store_id/file_batches", async (request) => {
    const body = parseBody(createFileBatchSchema, request.body);
    const batch = await service.createBatch(request.principal, request.params.vector_store_id, body);
    return encodeFileBatch(batch, await service.batchCounts(batch));
  });
  app.get<StoreBatch>("/v1/vector_stores/:vector_store_id/file_batches/:batch_id", async (request) => {
    const { vector_store_id, batch_id } = request.params;
    const batch = await service.getBatch(request.principal.projectId, vector_store_id, batch_id);
    return encodeFileBatch(batch, await service.batchCounts(batch));
  });
  app.post<StoreBatch>(
    "/v1/vector_stores/:vector_store_id/file_batches/:batch_id/cancel",
    async (request) => {
      const { vector_store_id, batch_id } = request.params;
      const batch = await service.cancelBatch(request.principal.projectId, vector_store_id, batch_id);
      return encodeFileBatch(batch, await service.batchCounts(batch));
    },
  );
  app.get<StoreBatch>("/v1/vector_stores/:vector_store_id/file_batches/:batch_id/files", async (request) => {
    const { vector_store_id, batch_id } = request.params;
    const query = parseBody(listFilesQuerySchema, request.query ?? {});
    const batch = await service.getBatch(request.principal.projectId, vector_store_id, batch_id);
    const files = await service.listFiles(request.principal.projectId, vector_store_id, {
      ...query,
      batchId: batch.id,
    });
    return encodePage(files, query.limit, encodeVectorStoreFile, (f) => f.fileId);
  });
}
