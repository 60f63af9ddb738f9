import { z } from "zod";
import { metadataSchema } from "../common-fields.js";

/** The wire shapes of /v1/vector_stores and its files, file batches and search, as the OpenAPI spec gives them. */

const fileId = z.string().min(1).max(128);

export const chunkingStrategySchema = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("auto") }),
  z.strictObject({
    type: z.literal("static"),
    static: z
      .strictObject({
        max_chunk_size_tokens: z.number().int().min(100).max(4096),
        chunk_overlap_tokens: z.number().int().min(0),
      })
      .refine((s) => s.chunk_overlap_tokens <= s.max_chunk_size_tokens / 2, {
        message: "chunk_overlap_tokens must not exceed half of max_chunk_size_tokens",
        path: ["chunk_overlap_tokens"],
      }),
  }),
]);
export type WireChunkingStrategy = z.infer<typeof chunkingStrategySchema>;

/** Up to 16 pairs: keys ≤64 characters, values strings (≤512), numbers or booleans. */
export const attributesSchema = z
  .record(z.string().max(64), z.union([z.string().max(512), z.number(), z.boolean()]))
  .refine((a) => Object.keys(a).length <= 16, "at most 16 keys")
  .nullable();

export const expiresAfterSchema = z.strictObject({
  anchor: z.literal("last_active_at"),
  days: z.number().int().min(1).max(365),
});

export const createVectorStoreSchema = z.strictObject({
  name: z.string().max(512).optional(),
  description: z.string().max(1024).optional(),
  file_ids: z.array(fileId).max(500).optional(),
  chunking_strategy: chunkingStrategySchema.optional(),
  expires_after: expiresAfterSchema.optional(),
  metadata: metadataSchema.nullish(),
});
export type CreateVectorStoreRequest = z.infer<typeof createVectorStoreSchema>;

export const updateVectorStoreSchema = z.strictObject({
  name: z.string().max(512).nullish(),
  expires_after: expiresAfterSchema.nullish(),
  metadata: metadataSchema.nullish(),
});
export type UpdateVectorStoreRequest = z.infer<typeof updateVectorStoreSchema>;

const order = z.enum(["asc", "desc"]).default("desc");

export const listQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  order,
  after: z.string().max(128).optional(),
  before: z.string().max(128).optional(),
});

export const FILE_STATUSES = ["in_progress", "completed", "failed", "cancelled"] as const;

export const listFilesQuerySchema = listQuerySchema.extend({ filter: z.enum(FILE_STATUSES).optional() });

export const createFileSchema = z.strictObject({
  file_id: fileId,
  chunking_strategy: chunkingStrategySchema.optional(),
  attributes: attributesSchema.optional(),
});
export type CreateVectorStoreFileRequest = z.infer<typeof createFileSchema>;

export const updateFileSchema = z.strictObject({ attributes: attributesSchema });

export const createFileBatchSchema = z
  .strictObject({
    file_ids: z.array(fileId).min(1).max(2000).optional(),
    files: z.array(createFileSchema).min(1).max(2000).optional(),
    chunking_strategy: chunkingStrategySchema.optional(),
    attributes: attributesSchema.optional(),
  })
  .refine((b) => (b.file_ids === undefined) !== (b.files === undefined), {
    message: "give either file_ids or files, not both",
    path: ["file_ids"],
  });
export type CreateFileBatchRequest = z.infer<typeof createFileBatchSchema>;

const comparisonFilter = z.strictObject({
  type: z.enum(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]),
  key: z.string().min(1).max(64),
  value: z.union([
    z.string().max(512),
    z.number(),
    z.boolean(),
    z.array(z.union([z.string().max(512), z.number()])).max(256),
  ]),
});
export type ComparisonFilter = z.infer<typeof comparisonFilter>;
export type CompoundFilter = { type: "and" | "or"; filters: Filter[] };
export type Filter = ComparisonFilter | CompoundFilter;

/** Compound filters nest; depth and width are bounded so a filter costs little to check. */
export const filterSchema: z.ZodType<Filter> = z.lazy(() =>
  z.union([
    comparisonFilter,
    z.strictObject({ type: z.enum(["and", "or"]), filters: z.array(filterSchema).max(64) }),
  ]),
);

export const rankingOptionsSchema = z.strictObject({
  ranker: z.enum(["none", "auto", "default-2024-11-15"]).optional(),
  score_threshold: z.number().min(0).max(1).optional(),
  hybrid_search: z
    .strictObject({
      embedding_weight: z.number().min(0).max(1000),
      text_weight: z.number().min(0).max(1000),
    })
    .optional(),
});
export type RankingOptions = z.infer<typeof rankingOptionsSchema>;

export const searchSchema = z.strictObject({
  query: z.union([z.string().min(1).max(4096), z.array(z.string().min(1).max(4096)).min(1).max(16)]),
  rewrite_query: z.boolean().optional(),
  max_num_results: z.number().int().min(1).max(50).optional(),
  filters: filterSchema.optional(),
  ranking_options: rankingOptionsSchema.optional(),
});
export type SearchRequest = z.infer<typeof searchSchema>;

/** The `file_search` tool of the Responses API. */
export const fileSearchToolSchema = z.strictObject({
  type: z.literal("file_search"),
  vector_store_ids: z.array(z.string().min(1).max(128)).min(1).max(16),
  max_num_results: z.number().int().min(1).max(50).optional(),
  ranking_options: rankingOptionsSchema.optional(),
  filters: filterSchema.nullish(),
});
export type FileSearchTool = z.infer<typeof fileSearchToolSchema>;
