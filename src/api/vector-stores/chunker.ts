import { ServiceError } from "../../core/errors.js";
import type { ChunkingSizes } from "../../storage/repositories/vector-store-types.js";

/** A model's tokenizer, or none (upstream models): then about four characters make a token. */
export interface ChunkTokenizer {
  tokenize(text: string): Promise<number[]>;
  detokenize(tokens: readonly number[]): Promise<string>;
}

export interface TextChunk {
  seq: number;
  text: string;
  tokens: number;
}

/**
 * Text is tokenized in pieces of about this many characters, cut at whitespace; a model whose
 * context cannot take that much at once (its tokenizer refuses longer texts) gets halves.
 */
const TOKENIZE_PIECE = 16_384;
const SMALLEST_PIECE = 128;
const CHARS_PER_TOKEN = 4;

/**
 * Cuts the pages' text into windows of at most `maxChunkSizeTokens` tokens (as the embedding
 * model's own tokenizer counts each chunk's text), each starting `chunkOverlapTokens` before the
 * previous one ended. The cut is the same every time for the same text, so a resumed ingestion
 * finds the chunks it wrote before under the same numbers.
 */
export async function* chunkText(
  pages: readonly string[],
  sizes: ChunkingSizes,
  tokenizer: ChunkTokenizer | null,
): AsyncGenerator<TextChunk> {
  const text = pages.join("\n\n");
  const step = Math.max(1, sizes.maxChunkSizeTokens - sizes.chunkOverlapTokens);
  let seq = 0;
  if (!tokenizer) {
    for (const window of characterWindows(
      text,
      sizes.maxChunkSizeTokens * CHARS_PER_TOKEN,
      step * CHARS_PER_TOKEN,
    )) {
      if (window.trim() === "") continue;
      yield { seq: seq++, text: window, tokens: Math.ceil(window.length / CHARS_PER_TOKEN) };
    }
    return;
  }
  const tokens = await tokenizeAll(text, tokenizer);
  const max = sizes.maxChunkSizeTokens;
  for (let start = 0; start < tokens.length; ) {
    let end = Math.min(tokens.length, start + max);
    let chunk = await windowText(tokens, start, end, tokenizer);
    // The text is what the model reads: encoded again it can take a token or two more where the
    // window cut a word. Such a window is shortened until its text holds at most `max` tokens,
    // so a chunk sized to the model's input limit always fits it.
    let counted = (await tokenizer.tokenize(chunk)).length;
    while (counted > max && end - start > 1) {
      end = Math.max(start + 1, end - (counted - max));
      chunk = await windowText(tokens, start, end, tokenizer);
      counted = (await tokenizer.tokenize(chunk)).length;
    }
    if (chunk.trim() !== "") yield { seq: seq++, text: chunk, tokens: counted };
    if (end >= tokens.length) break;
    // The next window overlaps this one's actual end, so a shortened window loses no text.
    start = Math.max(start + 1, end - sizes.chunkOverlapTokens);
  }
}

async function windowText(
  tokens: readonly number[],
  start: number,
  end: number,
  tokenizer: ChunkTokenizer,
): Promise<string> {
  return trimBrokenCharacters(await tokenizer.detokenize(tokens.slice(start, end)));
}

async function tokenizeAll(text: string, tokenizer: ChunkTokenizer): Promise<number[]> {
  const tokens: number[] = [];
  let size = TOKENIZE_PIECE;
  let rest = text;
  while (rest !== "") {
    const piece = pieces(rest, size).next().value as string;
    let ids: number[];
    try {
      ids = await tokenizer.tokenize(piece);
    } catch (err) {
      const tooLong = err instanceof ServiceError && err.code === "context_length_exceeded";
      if (!tooLong || size <= SMALLEST_PIECE) throw err;
      size = Math.floor(size / 2);
      continue;
    }
    // A loop, not push(...ids): spreading a long array into a call overflows the stack.
    for (const id of ids) tokens.push(id);
    rest = rest.slice(piece.length);
  }
  return tokens;
}

/** Consecutive pieces of `text` of about `size` characters, cut after whitespace where there is some. */
function* pieces(text: string, size: number): Generator<string> {
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + size);
    if (end < text.length) {
      const space = text.lastIndexOf(" ", end);
      const newline = text.lastIndexOf("\n", end);
      const cut = Math.max(space, newline);
      if (cut > start + size / 2) end = cut + 1;
    }
    yield text.slice(start, end);
    start = end;
  }
}

function* characterWindows(text: string, size: number, step: number): Generator<string> {
  for (let start = 0; start < text.length; start += step) {
    yield text.slice(start, start + size);
    if (start + size >= text.length) return;
  }
}

/** A window cut inside a multi-byte character decodes to U+FFFD at its ends; those are dropped. */
function trimBrokenCharacters(text: string): string {
  return text.replace(/^\uFFFD+/, "").replace(/\uFFFD+$/, "");
}
