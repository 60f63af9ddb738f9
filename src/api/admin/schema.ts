import { z } from "zod";

const count = z.number().int().min(1).max(1e12).nullable();

export const limitsSchema = z.strictObject({
  requests_per_minute: count.optional(),
  tokens_per_minute: count.optional(),
  max_concurrent: z.number().int().min(1).max(1e6).nullable().optional(),
  monthly_token_budget: z.number().int().min(0).max(1e15).nullable().optional(),
  monthly_cost_budget_usd: z.number().min(0).max(1e9).nullable().optional(),
});

const name = z.string().trim().min(1).max(256);
const modelName = z.string().min(1).max(256);

export const createProjectSchema = z.strictObject({ name, limits: limitsSchema.optional() });
export const updateProjectSchema = z.strictObject({ name: name.optional(), limits: limitsSchema.optional() });

export const createKeySchema = z.strictObject({
  name,
  role: z.enum(["admin", "member"]).default("member"),
  /** null or absent = every model. */
  allowed_models: z.array(modelName).max(1000).nullable().optional(),
  /** Unix seconds. */
  expires_at: z.number().int().positive().nullable().optional(),
  limits: limitsSchema.optional(),
});

export const updateKeySchema = z.strictObject({
  name: name.optional(),
  allowed_models: z.array(modelName).max(1000).nullable().optional(),
  expires_at: z.number().int().positive().nullable().optional(),
  limits: limitsSchema.optional(),
});

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "use YYYY-MM-DD");

export const usageQuerySchema = z.strictObject({
  group_by: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const parts = v
        ? v
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean)
        : [];
      for (const p of parts) {
        if (!["project", "key", "model", "day"].includes(p)) {
          ctx.addIssue({ code: "custom", message: `unknown grouping '${p}': use project, key, model, day` });
        }
      }
      return parts as ("project" | "key" | "model" | "day")[];
    }),
  project_id: z.string().max(64).optional(),
  key_id: z.string().max(64).optional(),
  from: day.optional(),
  to: day.optional(),
});

export type LimitsInput = z.infer<typeof limitsSchema>;
