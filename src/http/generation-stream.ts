import type { FastifyReply, FastifyRequest } from "fastify";
import type { Cancellation } from "../core/cancellation.js";
import type { GenerationPart } from "../core/generation.js";
import type { Generation } from "../generation/service.js";
import { streamErrorBody } from "./errors.js";
import { openEventStream } from "./request-context.js";
import type { SseWriter } from "./sse.js";

/** Writes a generation's parts as events; `first` is the part already read (if any). */
export type PartWriter = (
  first: GenerationPart | undefined,
  rest: AsyncIterator<GenerationPart>,
  sse: SseWriter,
) => Promise<void>;

/**
 * How a stream ends: chat and completions streams end with `[DONE]` and fail with an error frame;
 * the Responses API's typed stream has no `[DONE]` and fails with an `error` event.
 */
export interface StreamEnding {
  done(sse: SseWriter): Promise<void>;
  fail(sse: SseWriter, err: unknown): Promise<void>;
}

const DONE_ENDING: StreamEnding = {
  done: (sse) => sse.done(),
  fail: (sse, err) => sse.fail(streamErrorBody(err)),
};

/**
 * The one streaming driver under every SSE endpoint. The first part is awaited before anything
 * is written, so admission errors (a full queue, an engine restarting) still get a JSON error
 * with their status. Then it takes over the socket, lets `write` encode the parts, and ends with
 * `[DONE]` only when the whole answer went out: a stream cut short ends without it, and an error
 * ends with an error frame that keeps our own message.
 */
export async function streamGeneration(
  request: FastifyRequest,
  reply: FastifyReply,
  generation: Generation,
  signal: Pick<Cancellation, "aborted">,
  write: PartWriter,
  ending: StreamEnding = DONE_ENDING,
): Promise<void> {
  const iterator = generation.parts[Symbol.asyncIterator]();
  let first: IteratorResult<GenerationPart>;
  try {
    first = await iterator.next();
  } catch (err) {
    await iterator.return?.(undefined);
    await generation.end({ error: err });
    throw err;
  }
  const sse = openEventStream(request, reply);
  reply.hijack();
  sse.open();
  let failure: unknown;
  try {
    await write(first.done ? undefined : first.value, iterator, sse);
    if (signal.aborted || sse.aborted) sse.end();
    else await ending.done(sse);
  } catch (err) {
    failure = err;
    request.log.error({ err }, "stream failed after it began");
    await ending.fail(sse, err);
  } finally {
    // Whatever ended the stream (client gone, writer cut off, error), the generation stops.
    await iterator.return?.(undefined);
    await generation.end(failure === undefined ? {} : { error: failure });
  }
}
