import { z } from "zod";

export const BATCH_ENDPOINTS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

export const createBatchSchema = z.strictObject({
  input_file_id: z.string().min(1).max(128),
  endpoint: z.enum(BATCH_ENDPOINTS),
  completion_window: z.literal("24h"),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, "metadata holds at most 16 pairs")
    .nullish(),
  output_expires_after: z
    .strictObject({ anchor: z.literal("created_at"), seconds: z.number().int().min(3600).max(2_592_000) })
    .optional(),
});

export type CreateBatchRequest = z.infer<typeof createBatchSchema>;

export const listBatchesQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().max(128).optional(),
});

/** One line of a batch input file. */
export const batchLineSchema = z.strictObject({
  custom_id: z.string().min(1).max(512),
  method: z.literal("POST"),
  url: z.string(),
  body: z.record(z.string(), z.unknown()),
});
