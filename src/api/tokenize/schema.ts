import { z } from "zod";

/** POST /tokenize: a model's own tokenizer (an extension; llama.cpp's server offers the same). */
export const tokenizeRequestSchema = z.strictObject({
  model: z.string().min(1).max(256),
  content: z.string(),
  /** Parse special-token text such as `<|im_start|>` as the tokens it names (default: plain text). */
  parse_special: z.boolean().optional(),
  /** Also return each token's text. */
  with_pieces: z.boolean().optional(),
});

/** POST /detokenize */
export const detokenizeRequestSchema = z.strictObject({
  model: z.string().min(1).max(256),
  tokens: z.array(z.number().int().min(0)).max(1_048_576),
});
