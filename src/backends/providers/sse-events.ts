import { StringDecoder } from "node:string_decoder";
import { createParser, type EventSourceMessage } from "eventsource-parser";

export type { EventSourceMessage };

/**
 * An upstream's event stream, parsed once as the bytes arrive: `feed` each chunk and get the events
 * it completed. Nothing is buffered beyond the event being read, so a long answer costs no more
 * memory than a short one. Synchronous on purpose: the caller loops over the body once, with no
 * async generator per event in between.
 */
export class SseReader {
  /**
   * UTF-8 that keeps a character split between two chunks for the next one. Not a streaming
   * TextDecoder: on Node 20 that goes through an ICU converter made per decoder, several times
   * the cost of this one per upstream answer.
   */
  private readonly decoder = new StringDecoder("utf8");
  /** A byte order mark opens the stream at most: the first text decoded is checked for one. */
  private started = false;
  private ready: EventSourceMessage[] = [];
  private readonly parser = createParser({ onEvent: (event) => this.ready.push(event) });

  /** The events this chunk completed (often none, often several). */
  feed(chunk: Uint8Array): EventSourceMessage[] {
    this.parser.feed(this.text(this.decoder.write(chunk)));
    return this.take();
  }

  /**
   * At the end of the body. An event not terminated by a blank line is incomplete: it is dropped,
   * as EventSource does, and the stream decoder notices the answer never finished.
   */
  end(): EventSourceMessage[] {
    this.parser.feed(this.text(this.decoder.end()));
    return this.take();
  }

  /** As the event-stream format (and TextDecoder) has it: a BOM that opens the stream is dropped. */
  private text(decoded: string): string {
    if (this.started || decoded.length === 0) return decoded;
    this.started = true;
    return decoded.charCodeAt(0) === 0xfeff ? decoded.slice(1) : decoded;
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
