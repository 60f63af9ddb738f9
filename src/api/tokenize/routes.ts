import type { FastifyInstance } from "fastify";
import type { GenerationService } from "../../generation/service.js";
import { parseBody } from "../../http/validation.js";
import { detokenizeRequestSchema, tokenizeRequestSchema } from "./schema.js";

/**
 * POST /tokenize and /detokenize: a model's own tokenizer, for budgeting prompts (extensions, as
 * llama.cpp's server has them). They need the same key and model access as generation, but
 * generate nothing and count against no token limit.
 */
export async function tokenizeRoutes(
  app: FastifyInstance,
  opts: { generation: GenerationService },
): Promise<void> {
  app.post("/tokenize", async (request) => {
    const body = parseBody(tokenizeRequestSchema, request.body);
    const special = body.parse_special === true;
    const tokens = await opts.generation.tokenize(request.principal, body.model, body.content, special);
    if (!body.with_pieces) return { tokens };
    const pieces = await Promise.all(
      tokens.map(async (id) => ({
        id,
        piece: await opts.generation.detokenize(request.principal, body.model, [id]),
      })),
    );
    return { tokens: pieces };
  });

  app.post("/detokenize", async (request) => {
    const body = parseBody(detokenizeRequestSchema, request.body);
    return { content: await opts.generation.detokenize(request.principal, body.model, body.tokens) };
  });
}
