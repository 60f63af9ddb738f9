import { invalidRequest } from "../../core/errors.js";
import type { EmbeddingInput, EmbeddingRequest } from "../../core/generation.js";
import type { EmbeddingWireRequest } from "./schema.js";

/** Items in one request, as OpenAI allows (strings or token arrays). */
export const MAX_EMBEDDING_INPUTS = 2048;

/** Wire request → internal request. Throws 400s that name the field or the item. */
export function toEmbeddingRequest(req: EmbeddingWireRequest, model: string): EmbeddingRequest {
  const request: EmbeddingRequest = { model, input: toEmbeddingInput(req.input) };
  if (req.dimensions != null) request.dimensions = req.dimensions;
  return request;
}

/**
 * A string, an array of strings, an array of token ids (one input) or an array of token-id
 * arrays. Empty strings and empty arrays are refused, as OpenAI does.
 */
export function toEmbeddingInput(input: EmbeddingWireRequest["input"]): EmbeddingInput {
  if (typeof input === "string") {
    if (input === "") throw invalid("input must not be an empty string.", "input");
    return { kind: "text", texts: [input] };
  }
  if (input.length === 0) throw invalid("input must hold at least one item.", "input");
  const first = input[0];
  if (typeof first === "number") {
    input.forEach((item, i) => {
      checkTokenId(item, `input[${i}]`);
    });
    return { kind: "tokens", tokens: [input as number[]] };
  }
  if (input.length > MAX_EMBEDDING_INPUTS) {
    throw invalid(`input may hold at most ${MAX_EMBEDDING_INPUTS} items; it has ${input.length}.`, "input");
  }
  if (typeof first === "string") {
    input.forEach((item, i) => {
      if (typeof item !== "string")
        throw invalid("Every item of input must be a string, as the first is.", `input[${i}]`);
      if (item === "") throw invalid(`input[${i}] must not be an empty string.`, `input[${i}]`);
    });
    return { kind: "text", texts: input as string[] };
  }
  if (Array.isArray(first)) {
    input.forEach((item, i) => {
      const param = `input[${i}]`;
      if (!Array.isArray(item))
        throw invalid("Every item of input must be an array of token ids, as the first is.", param);
      if (item.length === 0) throw invalid(`${param} must hold at least one token id.`, param);
      item.forEach((token, j) => {
        checkTokenId(token, `${param}[${j}]`);
      });
    });
    return { kind: "tokens", tokens: input as number[][] };
  }
  throw invalid(
    "input must be a string, an array of strings, an array of token ids or an array of token-id arrays.",
    "input[0]",
  );
}

function checkTokenId(value: unknown, param: string): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw invalid(`${param} must be a token id (an integer of at least 0).`, param);
  }
}

function invalid(message: string, param: string) {
  return invalidRequest(message, param, "invalid_value");
}
