import { z } from "zod";

/**
 * The wire shape of POST /v1/embeddings. `input` is checked item by item in service.ts, so a bad
 * item is refused with its index (`input[3]`) rather than as a failed union; unknown fields are 400.
 */
export const embeddingRequestSchema = z.strictObject({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(z.unknown())]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().max(512).optional(),
});

export type EmbeddingWireRequest = z.infer<typeof embeddingRequestSchema>;
