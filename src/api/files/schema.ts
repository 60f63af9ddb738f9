import { z } from "zod";

/** Purposes a client may upload with (the others are ours: batch_output and the like). */
export const UPLOAD_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"] as const;
export type UploadPurpose = (typeof UPLOAD_PURPOSES)[number];

/** `expires_after`: anchored at the file's creation, between an hour and 30 days. */
export const expiresAfterSchema = z.strictObject({
  anchor: z.literal("created_at"),
  seconds: z.coerce.number().int().min(3600).max(2_592_000),
});

/** The text fields of a POST /v1/files form; `expires_after[anchor]` style keys are folded first. */
export const createFileFieldsSchema = z.strictObject({
  purpose: z.enum(UPLOAD_PURPOSES),
  expires_after: expiresAfterSchema.optional(),
});

export const listFilesQuerySchema = z.strictObject({
  purpose: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  after: z.string().max(128).optional(),
  order: z.enum(["asc", "desc"]).default("desc"),
});

export type ListFilesQuery = z.infer<typeof listFilesQuerySchema>;

/** Form fields `a[b]` become nested objects, as the SDKs send objects in multipart bodies. */
export function foldFormFields(fields: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) {
    const nested = /^([A-Za-z_]+)\[([A-Za-z_]+)\]$/.exec(name);
    if (nested?.[1] && nested[2]) {
      const holder = out[nested[1]];
      if (holder !== null && typeof holder === "object")
        (holder as Record<string, unknown>)[nested[2]] = value;
      else out[nested[1]] = { [nested[2]]: value };
    } else out[name] = value;
  }
  return out;
}
