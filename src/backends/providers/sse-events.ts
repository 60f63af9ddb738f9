import { createParser, type EventSourceMessage } from "eventsource-parser";

export type { EventSourceMessage };

/**
 * An upstream's event stream, parsed once as the bytes arrive: `feed` each chunk and get the events
 * it completed. Nothing is buffered beyond the event being read, so a long answer costs no more
 * memory than a short one. Synchronous on purpose: the caller loops over the body once, with no
 * async generator per event in between.
 */
export class SseReader {
  private readonly decoder = new TextDecoder();
  private ready: EventSourceMessage[] = [];
  private readonly parser = createParser({ onEvent: (event) => this.ready.push(event) });

  /** The events this chunk completed (often none, often several). */
  feed(chunk: Uint8Array): EventSourceMessage[] {
    this.parser.feed(this.decoder.decode(chunk, { stream: true }));
    return this.take();
  }

  /**
   * At the end of the body. An event not terminated by a blank line is incomplete: it is dropped,
   * as EventSource does, and the stream decoder notices the answer never finished.
   */
  end(): EventSourceMessage[] {
    this.parser.feed(this.decoder.decode());
    return this.take();
  }

  private take(): EventSourceMessage[] {
    if (this.ready.length === 0) return NO_EVENTS;
    const events = this.ready;
    this.ready = [];
    return events;
  }
}

const NO_EVENTS: EventSourceMessage[] = [];

/** An event's data as JSON; undefined when it is not JSON (the caller decides what that means). */
export function parseEventJson(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
