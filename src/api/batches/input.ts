import type { Principal } from "../../auth/principal.js";
import { ServiceError } from "../../core/errors.js";
import type { BatchLineError, NewBatchLine } from "../../storage/repositories/types.js";
import { checkLineBody, type LineContext } from "./line-runner.js";
import { type BatchEndpoint, batchLineSchema } from "./schema.js";

/** Lines in one batch, as OpenAI allows. */
export const MAX_BATCH_LINES = 50_000;
/** Embedding inputs across all lines of an embeddings batch, as OpenAI allows. */
export const MAX_BATCH_EMBEDDING_INPUTS = 50_000;
/** The largest batch input file, as OpenAI allows. */
export const MAX_BATCH_INPUT_BYTES = 200 * 1024 * 1024;
/** Errors reported on a failed batch; the first ones say enough. */
const MAX_REPORTED_ERRORS = 100;

export interface CheckedInput {
  lines: NewBatchLine[];
  model: string | null;
  errors: BatchLineError[];
}

/**
 * Reads a batch input file line by line and checks every line as its request would be checked:
 * JSON no longer than a request body may be, the line's shape, one endpoint (the batch's), unique
 * custom_id, one model, and a body the endpoint accepts. Errors carry the 1-based line number.
 */
export async function checkBatchInput(
  content: AsyncIterable<Buffer>,
  endpoint: BatchEndpoint,
  principal: Principal,
  context: LineContext,
): Promise<CheckedInput> {
  const lines: NewBatchLine[] = [];
  const errors: BatchLineError[] = [];
  const customIds = new Set<string>();
  let model: string | null = null;
  let embeddingInputs = 0;
  let lineNo = 0;
  const fail = (code: string, message: string, param: string | null = null) => {
    if (errors.length < MAX_REPORTED_ERRORS) errors.push({ code, message, param, line: lineNo });
  };
  for await (const text of boundedLines(content, context.maxLineBytes)) {
    lineNo++;
    if (text === null) {
      fail(
        "line_too_long",
        `The line is longer than the limit of ${context.maxLineBytes} bytes for a request.`,
      );
      continue;
    }
    if (text.trim() === "") continue;
    if (lines.length >= MAX_BATCH_LINES) {
      fail("too_many_lines", `A batch holds at most ${MAX_BATCH_LINES} requests.`);
      break;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      fail("invalid_json_line", "This line is not valid JSON.");
      continue;
    }
    const parsed = batchLineSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const param = issue?.path.join(".") || null;
      fail(
        "invalid_request",
        `Invalid line: ${param ? `${param}: ` : ""}${issue?.message ?? "bad shape"}.`,
        param,
      );
      continue;
    }
    const line = parsed.data;
    if (line.url !== endpoint) {
      fail(
        "mismatched_endpoint",
        `The line's url ${line.url.slice(0, 64)} is not the batch's endpoint ${endpoint}.`,
        "url",
      );
      continue;
    }
    if (customIds.has(line.custom_id)) {
      fail(
        "duplicate_custom_id",
        `The custom_id '${line.custom_id.slice(0, 64)}' appears more than once.`,
        "custom_id",
      );
      continue;
    }
    customIds.add(line.custom_id);
    try {
      const checked = checkLineBody(context, principal, endpoint, line.body);
      const lineModel = checked.model;
      embeddingInputs += checked.embeddingInputs;
      if (embeddingInputs > MAX_BATCH_EMBEDDING_INPUTS) {
        fail(
          "too_many_inputs",
          `An embeddings batch holds at most ${MAX_BATCH_EMBEDDING_INPUTS} inputs across its lines.`,
          "body.input",
        );
        break;
      }
      if (model !== null && lineModel !== model) {
        fail(
          "mismatched_model",
          `Every line of a batch must use one model; this one uses '${lineModel.slice(0, 64)}', not '${model}'.`,
          "body.model",
        );
        continue;
      }
      model = lineModel;
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      fail(err.code ?? "invalid_request", err.message, err.param ? `body.${err.param}` : "body");
      continue;
    }
    lines.push({ lineNo, customId: line.custom_id, body: JSON.stringify(line.body) });
  }
  if (lines.length === 0 && errors.length === 0) {
    errors.push({
      code: "empty_file",
      message: "The input file holds no requests.",
      param: null,
      line: null,
    });
  }
  return { lines, model, errors };
}

/**
 * The file's lines as text, split on \n (a \r before it dropped); a line longer than `maxBytes`
 * is null, and is skipped without ever being held whole.
 */
export async function* boundedLines(
  content: AsyncIterable<Buffer>,
  maxBytes: number,
): AsyncIterable<string | null> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let tooLong = false;
  const take = (): string | null => {
    const line = tooLong ? null : Buffer.concat(pending, pendingBytes).toString("utf8").replace(/\r$/, "");
    pending = [];
    pendingBytes = 0;
    tooLong = false;
    return line;
  };
  for await (const chunk of content) {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, end < 0 ? chunk.length : end);
      if (!tooLong) {
        pendingBytes += piece.length;
        if (pendingBytes > maxBytes) {
          tooLong = true;
          pending = [];
        } else if (piece.length > 0) pending.push(Buffer.from(piece));
      }
      if (end < 0) break;
      yield take();
      start = end + 1;
    }
  }
  if (pendingBytes > 0 || tooLong) yield take();
}
