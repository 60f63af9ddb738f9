import { describe, expect, it } from "vitest";
import { SseReader } from "../../src/backends/providers/sse-events.js";

const bytes = (text: string) => Buffer.from(text, "utf8");

/** Every event's data, feeding the chunks one by one and then ending the body. */
function read(chunks: Uint8Array[]): string[] {
  const reader = new SseReader();
  const data: string[] = [];
  for (const chunk of chunks) for (const event of reader.feed(chunk)) data.push(event.data);
  for (const event of reader.end()) data.push(event.data);
  return data;
}

describe("reading an upstream's event stream", () => {
  it("keeps a character whose bytes are split between two chunks whole", () => {
    const body = bytes('data: {"content":"héllo 😀"}\n\n');
    // Split inside the four bytes of the emoji and inside the two of the é.
    const emoji = body.indexOf(0xf0);
    const accent = body.indexOf(0xc3);
    const chunks = [
      body.subarray(0, accent + 1),
      body.subarray(accent + 1, emoji + 2),
      body.subarray(emoji + 2),
    ];
    expect(read(chunks)).toEqual(['{"content":"héllo 😀"}']);
  });

  it("drops a byte order mark that opens the stream, even split across chunks, and keeps a later one", () => {
    const body = bytes("\ufeffdata: a\n\ndata: \ufeffb\n\n");
    expect(read([body])).toEqual(["a", "\ufeffb"]);
    expect(read([body.subarray(0, 1), body.subarray(1, 2), body.subarray(2)])).toEqual(["a", "\ufeffb"]);
  });

  it("gives the events a chunk completes, and drops an event the body ends inside", () => {
    const reader = new SseReader();
    expect(reader.feed(bytes("data: one\n\ndata: tw"))).toEqual([expect.objectContaining({ data: "one" })]);
    expect(reader.feed(bytes("o\n"))).toEqual([]);
    expect(reader.end()).toEqual([]);
  });

  it("reads a character that is cut short as a replacement character", () => {
    const body = bytes("data: x😀\n\n");
    // The emoji's first byte only, then the end of the event, split there.
    const cut = Buffer.concat([body.subarray(0, 8), bytes("\n\n")]);
    expect(read([cut])).toEqual(["x\ufffd"]);
    expect(read([cut.subarray(0, 8), cut.subarray(8)])).toEqual(["x\ufffd"]);
  });
});
