import { createParser, type EventSourceMessage } from "eventsource-parser";

export type { EventSourceMessage };

/**
 * An upstream's event stream as events, parsed once as the bytes arrive: nothing is buffered
 * beyond the event being read, so a long answer costs no more memory than a short one.
 */
export async function* sseEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<EventSourceMessage> {
  const decoder = new TextDecoder();
  let ready: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => ready.push(event) });
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    if (ready.length === 0) continue;
    const events = ready;
    ready = [];
    yield* events;
  }
  // An event not terminated by a blank line before the end is incomplete: it is dropped, as
  // EventSource does, and the decoder above notices the answer never finished.
  parser.feed(decoder.decode());
  yield* ready;
}

/** An event's data as JSON; undefined when it is not JSON (the caller decides what that means). */
export function parseEventJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
