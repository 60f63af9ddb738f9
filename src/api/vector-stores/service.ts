import type { Principal } from "../../auth/principal.js";
import { invalidRequest, notFound, ServiceError } from "../../core/errors.js";
import { isObjectId, randomId } from "../../core/ids.js";
import type { GenerationService } from "../../generation/service.js";
import type { BatchCaller } from "../../storage/repositories/types.js";
import type {
  ChunkingSizes,
  FileAttributes,
  StoredFileBatch,
  StoredVectorStore,
  StoredVectorStoreFile,
  VectorStoreFileStatus,
  VectorStoreRepository,
  VectorStoreUsage,
} from "../../storage/repositories/vector-store-types.js";
import type { FileService } from "../files/service.js";
import { AUTO_CHUNKING, fitChunking } from "./chunk-sizes.js";
import { isExpired } from "./expiry.js";
import type {
  CreateFileBatchRequest,
  CreateVectorStoreFileRequest,
  CreateVectorStoreRequest,
  UpdateVectorStoreRequest,
  WireChunkingStrategy,
} from "./schema.js";

const DAY_MS = 86_400_000;

export const vectorStoreIds = {
  store: () => `vs_${randomId()}`,
  batch: () => `vsfb_${randomId()}`,
};

export interface VectorStoreServiceDeps {
  stores: VectorStoreRepository;
  files: FileService;
  generation: GenerationService;
  now: () => number;
  /** The embedding model new stores use; undefined = the first model that embeds. */
  embeddingModel?: string;
  /** Every model that embeds, in configuration order (the default's candidates). */
  embeddingModels: () => readonly string[];
  /** Tells the ingestion workers there is work. */
  wakeIngestion: () => void;
}

export function chunkingOf(strategy: WireChunkingStrategy | undefined): ChunkingSizes {
  if (!strategy || strategy.type === "auto") return AUTO_CHUNKING;
  return {
    maxChunkSizeTokens: strategy.static.max_chunk_size_tokens,
    chunkOverlapTokens: strategy.static.chunk_overlap_tokens,
  };
}

function callerOf(principal: Principal): BatchCaller {
  return {
    keyId: principal.keyId,
    allowedModels: principal.allowedModels ? [...principal.allowedModels] : null,
    keyLimits: principal.keyLimits,
    projectLimits: principal.projectLimits,
  };
}

export function storeNotFound(id: string, param = "vector_store_id") {
  return notFound(`No such vector store: ${id.slice(0, 80)}`, "vector_store_not_found", param);
}

/** Vector stores, their files and file batches; the ingestion itself is the IngestionWorker's. */
export class VectorStoreService {
  constructor(private readonly deps: VectorStoreServiceDeps) {}

  get now(): number {
    return this.deps.now();
  }

  async create(principal: Principal, req: CreateVectorStoreRequest): Promise<StoredVectorStore> {
    const model = this.embeddingModelFor(principal);
    const now = this.now;
    const days = req.expires_after?.days ?? null;
    const store: StoredVectorStore = {
      id: vectorStoreIds.store(),
      projectId: principal.projectId,
      name: req.name ?? "",
      description: req.description ?? null,
      metadata: req.metadata ?? null,
      embeddingModel: model,
      expiresAfterDays: days,
      expiresAt: days === null ? null : now + days * DAY_MS,
      lastActiveAt: now,
      createdAt: now,
      expiredAt: null,
    };
    const files = await this.describeFiles(
      principal,
      store,
      (req.file_ids ?? []).map((fileId, i) => ({ fileId, param: `file_ids[${i}]` })),
      chunkingOf(req.chunking_strategy),
      null,
      null,
    );
    await this.deps.stores.create(store, files);
    if (files.length > 0) this.deps.wakeIngestion();
    return store;
  }

  async get(projectId: string, id: string, param?: string): Promise<StoredVectorStore> {
    const store = isObjectId(id, "vs_") ? await this.deps.stores.get(projectId, id) : undefined;
    if (!store) throw storeNotFound(id, param);
    return store;
  }

  /**
   * A store that is not expired: searching an expired one, attaching files to it or reading its
   * files' parsed content is refused (its chunks are removed).
   */
  async getActive(projectId: string, id: string, param?: string): Promise<StoredVectorStore> {
    const store = await this.get(projectId, id, param);
    if (isExpired(store, this.now)) throw storeExpired(store.id, param);
    return store;
  }

  async usage(store: StoredVectorStore): Promise<VectorStoreUsage> {
    return (await this.usageOf([store])).get(store.id) as VectorStoreUsage;
  }

  usageOf(stores: readonly StoredVectorStore[]): Promise<Map<string, VectorStoreUsage>> {
    const projectId = stores[0]?.projectId ?? "";
    return this.deps.stores.usage(
      projectId,
      stores.map((s) => s.id),
    );
  }

  list(projectId: string, query: { limit: number; order: "asc" | "desc"; after?: string; before?: string }) {
    return this.deps.stores.list(projectId, query);
  }

  async update(projectId: string, id: string, req: UpdateVectorStoreRequest): Promise<StoredVectorStore> {
    const store = await this.get(projectId, id);
    const patch: Parameters<VectorStoreRepository["update"]>[2] = {};
    if (req.name !== undefined) patch.name = req.name ?? "";
    if (req.metadata !== undefined) patch.metadata = req.metadata;
    if (req.expires_after !== undefined) {
      // Its data is gone or going: an expired store cannot be brought back.
      if (isExpired(store, this.now)) throw storeExpired(store.id, "expires_after");
      patch.expiresAfterDays = req.expires_after?.days ?? null;
      patch.expiresAt = req.expires_after ? store.lastActiveAt + req.expires_after.days * DAY_MS : null;
    }
    return (await this.deps.stores.update(projectId, id, patch)) ?? store;
  }

  async delete(projectId: string, id: string): Promise<void> {
    await this.get(projectId, id);
    if (!(await this.deps.stores.delete(projectId, id))) throw storeNotFound(id);
  }

  /** Marks the store used now, which moves its expiry (anchor: last_active_at). */
  async touch(store: StoredVectorStore): Promise<void> {
    const now = this.now;
    await this.deps.stores.update(store.projectId, store.id, {
      lastActiveAt: now,
      ...(store.expiresAfterDays === null ? {} : { expiresAt: now + store.expiresAfterDays * DAY_MS }),
    });
  }

  async attachFile(
    principal: Principal,
    storeId: string,
    req: CreateVectorStoreFileRequest,
  ): Promise<StoredVectorStoreFile> {
    const store = await this.getActive(principal.projectId, storeId);
    const [file] = await this.describeFiles(
      principal,
      store,
      [{ fileId: req.file_id, param: "file_id" }],
      chunkingOf(req.chunking_strategy),
      req.attributes ?? null,
      null,
    );
    if (!(await this.deps.stores.attachFiles(store.id, [file as StoredVectorStoreFile])))
      throw storeExpired(store.id);
    await this.touch(store);
    this.deps.wakeIngestion();
    return file as StoredVectorStoreFile;
  }

  async createBatch(
    principal: Principal,
    storeId: string,
    req: CreateFileBatchRequest,
  ): Promise<StoredFileBatch> {
    const store = await this.getActive(principal.projectId, storeId);
    const batch: StoredFileBatch = {
      id: vectorStoreIds.batch(),
      vectorStoreId: store.id,
      projectId: principal.projectId,
      createdAt: this.now,
      cancelledAt: null,
    };
    const defaults = chunkingOf(req.chunking_strategy);
    const entries = req.files
      ? req.files.map((f, i) => ({
          fileId: f.file_id,
          param: `files[${i}].file_id`,
          chunking: f.chunking_strategy ? chunkingOf(f.chunking_strategy) : undefined,
          chunkingParam: `files[${i}].chunking_strategy`,
          attributes: f.attributes,
        }))
      : (req.file_ids ?? []).map((fileId, i) => ({ fileId, param: `file_ids[${i}]` }));
    const seen = new Set<string>();
    for (const entry of entries) {
      if (seen.has(entry.fileId))
        throw invalidRequest(
          `The file ${entry.fileId.slice(0, 80)} is listed twice.`,
          entry.param,
          "duplicate_file",
        );
      seen.add(entry.fileId);
    }
    const files = await this.describeFiles(
      principal,
      store,
      entries,
      defaults,
      req.attributes ?? null,
      batch.id,
    );
    if (!(await this.deps.stores.attachFiles(store.id, files, batch))) throw storeExpired(store.id);
    await this.touch(store);
    this.deps.wakeIngestion();
    return batch;
  }

  async getFile(projectId: string, storeId: string, fileId: string): Promise<StoredVectorStoreFile> {
    await this.get(projectId, storeId);
    const file = await this.deps.stores.getFile(projectId, storeId, fileId);
    if (!file) throw fileNotAttached(fileId);
    return file;
  }

  async listFiles(
    projectId: string,
    storeId: string,
    query: {
      limit: number;
      order: "asc" | "desc";
      after?: string;
      before?: string;
      filter?: VectorStoreFileStatus;
      batchId?: string;
    },
  ): Promise<StoredVectorStoreFile[]> {
    await this.get(projectId, storeId);
    return this.deps.stores.listFiles(projectId, storeId, { ...query, status: query.filter });
  }

  async updateAttributes(
    projectId: string,
    storeId: string,
    fileId: string,
    attributes: FileAttributes | null,
  ): Promise<StoredVectorStoreFile> {
    await this.getFile(projectId, storeId, fileId);
    const updated = await this.deps.stores.updateAttributes(projectId, storeId, fileId, attributes);
    if (!updated) throw fileNotAttached(fileId);
    return updated;
  }

  async deleteFile(projectId: string, storeId: string, fileId: string): Promise<void> {
    await this.getFile(projectId, storeId, fileId);
    if (!(await this.deps.stores.deleteFile(projectId, storeId, fileId))) throw fileNotAttached(fileId);
  }

  async fileContent(projectId: string, storeId: string, fileId: string): Promise<string[]> {
    await this.getActive(projectId, storeId);
    await this.getFile(projectId, storeId, fileId);
    return this.deps.stores.filePages(projectId, storeId, fileId);
  }

  async getBatch(projectId: string, storeId: string, batchId: string): Promise<StoredFileBatch> {
    await this.get(projectId, storeId);
    const batch = isObjectId(batchId, "vsfb_")
      ? await this.deps.stores.getBatch(projectId, storeId, batchId)
      : undefined;
    if (!batch)
      throw notFound(`No such file batch: ${batchId.slice(0, 80)}`, "file_batch_not_found", "batch_id");
    return batch;
  }

  batchCounts(batch: StoredFileBatch) {
    return this.deps.stores.batchCounts(batch.id);
  }

  async cancelBatch(projectId: string, storeId: string, batchId: string): Promise<StoredFileBatch> {
    const batch = await this.getBatch(projectId, storeId, batchId);
    const counts = await this.deps.stores.batchCounts(batch.id);
    if (batch.cancelledAt === null && counts.inProgress === 0) {
      throw invalidRequest(
        "The file batch has already finished; it cannot be cancelled.",
        null,
        "batch_not_cancellable",
      );
    }
    await this.deps.stores.cancelBatch(projectId, storeId, batchId, this.now);
    return this.getBatch(projectId, storeId, batchId);
  }

  /** The store's embedding model: the configured one, else the first that embeds; the caller must be allowed to use it. */
  private embeddingModelFor(principal: Principal): string {
    const model = this.deps.embeddingModel ?? this.deps.embeddingModels()[0];
    if (!model) {
      throw invalidRequest(
        "Vector stores need an embedding model, and this server serves none (configure a model of kind: embedding).",
        null,
        "no_embedding_model",
      );
    }
    this.deps.generation.checkModel(principal, model, "embeddings");
    return model;
  }

  /**
   * Looks every file up in the caller's project (404 naming the entry) and describes its
   * attachment. Where the store's embedding model tells its input limit now, each file's chunking
   * is fitted to it (auto lowered, a static size too large refused with 400); else ingestion fits
   * it once the model is loaded.
   */
  private async describeFiles(
    principal: Principal,
    store: StoredVectorStore,
    entries: readonly {
      fileId: string;
      param: string;
      chunking?: ChunkingSizes;
      chunkingParam?: string;
      attributes?: FileAttributes | null;
    }[],
    chunking: ChunkingSizes,
    attributes: FileAttributes | null,
    batchId: string | null,
  ): Promise<StoredVectorStoreFile[]> {
    const now = this.now;
    const out: StoredVectorStoreFile[] = [];
    if (entries.length === 0) return out;
    const limit = this.deps.generation.embeddingInputLimit(store.embeddingModel);
    for (const entry of entries) {
      let sizes = entry.chunking ?? chunking;
      if (limit !== undefined) {
        const fitted = fitChunking(sizes, limit, store.embeddingModel);
        if ("refusal" in fitted) {
          const strategy = (entry.chunking && entry.chunkingParam) || "chunking_strategy";
          const param = sizes.auto ? strategy : `${strategy}.static.max_chunk_size_tokens`;
          throw invalidRequest(fitted.refusal, param, "invalid_value");
        }
        sizes = fitted.sizes;
      }
      const file = await this.deps.files.get(principal.projectId, entry.fileId).catch((err: unknown) => {
        if (err instanceof ServiceError && err.kind === "not_found")
          throw notFound(`No such File object: ${entry.fileId.slice(0, 80)}`, "file_not_found", entry.param);
        throw err;
      });
      out.push({
        vectorStoreId: store.id,
        fileId: file.id,
        projectId: principal.projectId,
        batchId,
        filename: file.filename,
        status: "in_progress",
        lastError: null,
        chunking: sizes,
        attributes: entry.attributes === undefined ? attributes : entry.attributes,
        usageBytes: 0,
        caller: callerOf(principal),
        createdAt: now,
      });
    }
    return out;
  }
}

function storeExpired(id: string, param?: string) {
  return invalidRequest(
    `The vector store ${id} has expired and its contents were removed; create a new one.`,
    param ?? "vector_store_id",
    "vector_store_expired",
  );
}

function fileNotAttached(fileId: string) {
  return notFound(
    `No such vector store file: ${fileId.slice(0, 80)}`,
    "vector_store_file_not_found",
    "file_id",
  );
}
