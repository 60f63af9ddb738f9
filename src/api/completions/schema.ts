import { z } from "zod";
import { samplingExtensions } from "../sampling.js";

/**
 * The wire shape of POST /v1/completions (the legacy text API). Every documented field is
 * honoured or refused with a 400 naming it; unknown fields are refused too.
 */

const tokenId = z.number().int().min(0);

export const completionRequestSchema = z.strictObject({
  model: z.string().min(1).max(256),
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1, "prompt must hold at least one prompt").max(2048),
    z.array(tokenId).min(1, "a token prompt must hold at least one token"),
    z
      .array(z.array(tokenId).min(1, "a token prompt must hold at least one token"))
      .min(1, "prompt must hold at least one prompt")
      .max(2048),
  ]),
  best_of: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, "keys are token ids"), z.number().min(-100).max(100))
    .nullish(),
  logprobs: z.number().int().min(0).max(5).nullish(),
  max_tokens: z.number().int().min(0).nullish(),
  n: z.number().int().min(1).max(128).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  seed: z.number().int().nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4, "at most 4 stop sequences")]).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z
    .strictObject({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() })
    .nullish(),
  suffix: z.string().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  ...samplingExtensions,
  user: z.string().max(512).optional(),
});

export type CompletionRequest = z.infer<typeof completionRequestSchema>;
