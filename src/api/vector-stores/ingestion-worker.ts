import type { Principal } from "../../auth/principal.js";
import { ServiceError } from "../../core/errors.js";
import type { GenerationService } from "../../generation/service.js";
import { LeasedJobRunner } from "../../queue/leased-job-runner.js";
import type {
  ChunkingSizes,
  ClaimedIngestion,
  IngestionError,
  NewChunk,
  StoredVectorStore,
  StoredVectorStoreFile,
  VectorStoreRepository,
} from "../../storage/repositories/vector-store-types.js";
import type { FileService } from "../files/service.js";
import { fitChunking, sameSizes } from "./chunk-sizes.js";
import { type ChunkTokenizer, chunkText } from "./chunker.js";
import { isExpired } from "./expiry.js";
import { extractPages, IngestionFailure } from "./text-extraction.js";

export interface IngestionWorkerOptions {
  stores: VectorStoreRepository;
  files: FileService;
  generation: GenerationService;
  now: () => number;
  logger: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  concurrency: number;
  leaseMs: number;
  pollIntervalMs: number;
  /** Tries at a file that meets a retryable error (overload, an engine restarting) before it fails. */
  maxAttempts: number;
  /** Chunks embedded per embedding call. */
  embedBatchSize: number;
  /** Larger files fail with invalid_file instead of being read into memory. */
  maxFileBytes: number;
  /** Where the time goes (the server's metrics). */
  telemetry?: IngestionTelemetry;
}

/** extract: read and parse the file; chunk: cut it (the model's tokenizer); embed; store: write chunks and complete. */
export type IngestionStage = "extract" | "chunk" | "embed" | "store";

export interface IngestionTelemetry {
  /** Seconds one step of a file's ingestion spent in a stage (steps of files ingested at once add up). */
  stage(stage: IngestionStage, seconds: number): void;
  /** Chunks embedded and written. */
  chunks(count: number): void;
  /** A file completed, with its size. */
  completed(bytes: number): void;
}

const NO_TELEMETRY: IngestionTelemetry = { stage() {}, chunks() {}, completed() {} };

/** Runs `work`, adding its time to `stage`. */
async function timed<T>(
  telemetry: IngestionTelemetry,
  stage: IngestionStage,
  work: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  try {
    return await work();
  } finally {
    telemetry.stage(stage, (performance.now() - started) / 1000);
  }
}

const jobKey = (job: ClaimedIngestion) => `${job.vectorStoreId}/${job.fileId}`;

/**
 * Reads, chunks and embeds attached files off the request path, on every instance, through the
 * leased job runner (the file rows are the jobs). Chunks are written batch by batch as they are
 * embedded; a worker that dies mid-file leaves them, and the next one to take the file embeds only
 * the chunks after them (the cut is deterministic, and chunk numbers are unique). The file becomes
 * searchable in one transaction at the end. Embeddings go through the generation service, as
 * /v1/embeddings requests do, with the attaching key's access and limits.
 */
export class IngestionWorker {
  private readonly runner: LeasedJobRunner<ClaimedIngestion>;

  constructor(private readonly options: IngestionWorkerOptions) {
    const { stores } = options;
    this.runner = new LeasedJobRunner<ClaimedIngestion>({
      name: "ingestion worker",
      store: {
        claim: (owner, now, leaseMs, max) => stores.claimIngestion(owner, now, leaseMs, max),
        renew: (owner, jobs, until) => stores.renewIngestion(owner, jobs, until),
        release: (owner, jobs, retryAt) => stores.releaseIngestion(owner, jobs, retryAt),
      },
      keyOf: jobKey,
      run: (job, signal) => this.ingest(job, signal),
      concurrency: options.concurrency,
      leaseMs: options.leaseMs,
      pollIntervalMs: options.pollIntervalMs,
      now: options.now,
      logger: options.logger,
      // A file detached, re-attached or cancelled meanwhile, or its store expired: its run stops.
      afterRenew: async (running) => {
        for (const { job, abort } of running) {
          const target = await stores.ingestionTarget(job.vectorStoreId, job.fileId);
          if (target?.file.status !== "in_progress" || isExpired(target.store, options.now()))
            abort(new Error("file no longer waits for ingestion"));
        }
      },
    });
  }

  start(): void {
    this.runner.start();
  }

  wake(): void {
    this.runner.wake();
  }

  stop(graceMs: number): Promise<void> {
    return this.runner.stop(graceMs);
  }

  private get owner(): string {
    return this.runner.owner;
  }

  private async ingest(job: ClaimedIngestion, signal: AbortSignal): Promise<void> {
    const { stores, maxAttempts, now } = this.options;
    const target = await stores.ingestionTarget(job.vectorStoreId, job.fileId);
    // An expired store's files are cancelled by the expiry sweep.
    if (target?.file.status !== "in_progress" || isExpired(target.store, now())) {
      await stores.releaseIngestion(this.owner, [job], null);
      return;
    }
    const { store, file } = target;
    try {
      await this.process(store, file, signal);
    } catch (err) {
      if (signal.aborted) {
        await stores.releaseIngestion(this.owner, [job], null);
        return;
      }
      if (err instanceof ServiceError && err.retryable && job.attempts < maxAttempts) {
        await stores.releaseIngestion(this.owner, [job], now() + 500 * 2 ** job.attempts);
        return;
      }
      const failure = ingestionError(err);
      if (failure.code === "server_error")
        this.options.logger.warn({ err, fileId: file.fileId }, "file ingestion failed");
      await stores.failIngestion(this.owner, store.id, file.fileId, failure);
    }
  }

  private async process(
    store: StoredVectorStore,
    file: StoredVectorStoreFile,
    signal: AbortSignal,
  ): Promise<void> {
    const { stores, files, generation } = this.options;
    const telemetry = this.options.telemetry ?? NO_TELEMETRY;
    const { source, pages } = await timed(telemetry, "extract", async () => {
      const source = await files.get(file.projectId, file.fileId).catch(() => {
        throw new IngestionFailure("invalid_file", "The file was deleted before it could be indexed.");
      });
      if (source.bytes > this.options.maxFileBytes) {
        throw new IngestionFailure(
          "invalid_file",
          `The file has ${source.bytes} bytes; files of up to ${this.options.maxFileBytes} bytes can be indexed.`,
        );
      }
      const parts: Buffer[] = [];
      for await (const part of files.content(source)) parts.push(part);
      return { source, pages: await extractPages(Buffer.concat(parts), source.filename, source.mimeType) };
    });
    const principal = principalOf(file);
    const written = await timed(telemetry, "store", () => stores.chunkCount(store.id, file.fileId));
    const tokenizer = await timed(telemetry, "chunk", () =>
      this.tokenizerFor(principal, store.embeddingModel),
    );
    const chunking = await this.fittedChunking(store, file, written);
    let pending: { seq: number; text: string; tokens: number }[] = [];
    const flush = async () => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      // Batch priority: interactive requests go first for the model's slots.
      const embedded = await timed(telemetry, "embed", () =>
        generation.embed({
          priority: "batch",
          principal,
          endpoint: "vector_stores.files",
          model: store.embeddingModel,
          toRequest: (deployment) => ({
            model: deployment.id,
            input: { kind: "text", texts: batch.map((c) => c.text) },
            paramOf: (i) => `chunk ${(batch[i]?.seq ?? 0) + 1}`,
          }),
          signal,
        }),
      );
      const chunks: NewChunk[] = batch.map((c, i) => ({
        ...c,
        embedding: embedded.result.vectors[i] as Float32Array,
      }));
      const added = await timed(telemetry, "store", () =>
        stores.addChunks(this.owner, store.id, file.fileId, chunks),
      );
      if (!added) throw leaseLost();
      telemetry.chunks(chunks.length);
    };
    // Iterated by hand so the time spent cutting (tokenize, detokenize) is told apart from the rest.
    const cut = chunkText(pages, chunking, tokenizer);
    for (;;) {
      const next = await timed(telemetry, "chunk", () => cut.next());
      if (next.done) break;
      if (signal.aborted) throw leaseLost();
      if (next.value.seq < written) continue;
      pending.push(next.value);
      if (pending.length >= this.options.embedBatchSize) await flush();
    }
    await flush();
    const completed = await timed(telemetry, "store", () =>
      stores.completeIngestion(this.owner, store.id, file.fileId, pages),
    );
    if (!completed) throw leaseLost();
    telemetry.completed(source.bytes);
  }

  /**
   * The sizes the file is cut with: its own, fitted to the embedding model's input limit (known by
   * now for a local model: cutting loaded it), and recorded first where fitting lowered `auto`, so
   * the file reports what was used and a resumed ingestion cuts the same way. A static size the
   * model cannot take fails the file.
   */
  private async fittedChunking(
    store: StoredVectorStore,
    file: StoredVectorStoreFile,
    written: number,
  ): Promise<ChunkingSizes> {
    // Unknown still (a routed model over a local one not loaded): the sizes stay as they are.
    const limit =
      this.options.generation.embeddingInputLimit(store.embeddingModel) ?? Number.POSITIVE_INFINITY;
    const fitted = fitChunking(file.chunking, limit, store.embeddingModel);
    if ("refusal" in fitted) throw new IngestionFailure("invalid_file", fitted.refusal);
    if (sameSizes(fitted.sizes, file.chunking)) return file.chunking;
    if (written > 0) {
      // Part of the file was cut and embedded with the old sizes, before the model's limit shrank.
      throw new IngestionFailure(
        "invalid_file",
        `The embedding model '${store.embeddingModel}' now takes at most ${Math.floor(limit)} tokens per input, fewer than when this file's indexing began; attach it again.`,
      );
    }
    if (!(await this.options.stores.setChunking(this.owner, store.id, file.fileId, fitted.sizes)))
      throw leaseLost();
    return fitted.sizes;
  }

  /** The embedding model's own tokenizer, or null when it offers none (upstream models). */
  private async tokenizerFor(principal: Principal, model: string): Promise<ChunkTokenizer | null> {
    const { generation } = this.options;
    try {
      await generation.tokenize(principal, model, "probe", false);
    } catch (err) {
      if (err instanceof ServiceError && err.kind === "invalid_request") return null;
      throw err;
    }
    return {
      tokenize: (text) => generation.tokenize(principal, model, text, false),
      detokenize: (tokens) => generation.detokenize(principal, model, [...tokens]),
    };
  }
}

function leaseLost(): Error {
  return new ServiceError("unavailable", "The file's ingestion was taken over or stopped.");
}

function principalOf(file: StoredVectorStoreFile): Principal {
  return {
    projectId: file.projectId,
    keyId: file.caller.keyId,
    role: "member",
    allowedModels: file.caller.allowedModels,
    keyLimits: file.caller.keyLimits,
    projectLimits: file.caller.projectLimits,
  };
}

function ingestionError(err: unknown): IngestionError {
  if (err instanceof IngestionFailure) return { code: err.code, message: err.message };
  if (err instanceof ServiceError) return { code: "server_error", message: err.message };
  return { code: "server_error", message: "The file could not be indexed because of an internal error." };
}
