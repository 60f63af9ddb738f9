import type { FastifyReply, FastifyRequest } from "fastify";
import type { GenerationPart } from "../core/generation.js";
import type { Generation } from "../generation/service.js";
import { streamErrorBody } from "./errors.js";
import { pendingHeaders } from "./request-context.js";
import { SseWriter } from "./sse.js";

/** Writes a generation's parts as events; `first` is the part already read (if any). */
export type PartWriter = (
  first: GenerationPart | undefined,
  rest: AsyncIterator<GenerationPart>,
  sse: SseWriter,
) => Promise<void>;

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
  signal: AbortSignal,
  write: PartWriter,
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
  const sse = new SseWriter(reply.raw, { headers: pendingHeaders(request, reply) });
  reply.hijack();
  sse.open();
  let failure: unknown;
  try {
    await write(first.done ? undefined : first.value, iterator, sse);
    if (signal.aborted || sse.signal.aborted) sse.end();
    else await sse.done();
  } catch (err) {
    failure = err;
    request.log.error({ err, requestId: request.id }, "stream failed after it began");
    await sse.fail(streamErrorBody(err));
  } finally {
    // Whatever ended the stream (client gone, writer cut off, error), the generation stops.
    await iterator.return?.(undefined);
    await generation.end(failure === undefined ? {} : { error: failure });
  }
}
