import { z } from "zod";
import { expiresAfterSchema, UPLOAD_PURPOSES } from "../files/schema.js";

export const createUploadSchema = z.strictObject({
  filename: z.string().min(1).max(512),
  purpose: z.enum(UPLOAD_PURPOSES),
  bytes: z.number().int().min(1),
  mime_type: z.string().min(1).max(256),
  expires_after: expiresAfterSchema.optional(),
});

export const completeUploadSchema = z.strictObject({
  part_ids: z.array(z.string().max(128)).min(1).max(10_000),
  md5: z
    .string()
    .regex(/^[a-fA-F0-9]{32}$/, "md5 must be 32 hexadecimal digits")
    .optional(),
});

export type CreateUploadRequest = z.infer<typeof createUploadSchema>;
