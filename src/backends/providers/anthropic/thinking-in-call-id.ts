import { deflateRawSync, inflateRawSync } from "node:zlib";

/**
 * Anthropic's signed thinking, carried in the ids of the tool calls it came with.
 *
 * With extended thinking on, Anthropic wants the thinking blocks of the assistant turn that made
 * the tool calls back, unmodified and before its `tool_use` blocks, when the tool results go up:
 * without them the request is refused. A thinking block is its text and a `signature`; a
 * `redacted_thinking` block is opaque `data`. An OpenAI client sends back exactly one thing of a
 * call: its id (in the assistant message's `tool_calls` and in each tool message's
 * `tool_call_id`). So the blocks ride in the id, as the Gemini provider carries its thought
 * signatures, and the server keeps nothing.
 *
 * An id is `<Anthropic's id>_th_<payload>`: the blocks as JSON, deflated, in base64url (ids stay
 * `[A-Za-z0-9_-]`). Anthropic's own id (`toolu_…`) is what goes back upstream as the `tool_use`
 * id and the `tool_result`'s `tool_use_id`. An id is bounded: blocks that would make it longer
 * than `MAX_CARRYING_ID` are not carried. A payload is read with bounds and checked field by
 * field; one that does not read back carries nothing, and the upstream id is still recovered.
 */

export type SignedThinking =
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "redacted_thinking"; data: string };

/** Below the 32,768 characters the chat and responses APIs take for a call id sent back. */
export const MAX_CARRYING_ID = 30_000;
/** What a payload may inflate to (a tampered one could claim far more); larger blocks are not carried. */
const MAX_INFLATED_BYTES = 1 << 20;
const MAX_BLOCKS = 256;

/** Anthropic's ids (`toolu_<base62>`): the only ones a payload is appended to, so the split is unambiguous. */
const UPSTREAM_ID = /^[A-Za-z0-9]+_[A-Za-z0-9]+$/;
const CARRYING = /^([A-Za-z0-9]+_[A-Za-z0-9]+)_th_([A-Za-z0-9_-]+)$/;

type WireBlock = ["t", string, string] | ["r", string];

/** `id` carrying `blocks`; `id` itself when there are none, or they would not fit. */
export function idWithThinking(id: string, blocks: readonly SignedThinking[]): string {
  if (blocks.length === 0 || blocks.length > MAX_BLOCKS || !UPSTREAM_ID.test(id)) return id;
  const wire: WireBlock[] = blocks.map((block) =>
    block.type === "thinking" ? ["t", block.thinking, block.signature] : ["r", block.data],
  );
  const json = Buffer.from(JSON.stringify(wire), "utf8");
  if (json.length > MAX_INFLATED_BYTES) return id;
  const payload = deflateRawSync(json).toString("base64url");
  const carrying = `${id}_th_${payload}`;
  return carrying.length <= MAX_CARRYING_ID ? carrying : id;
}

/** The id Anthropic gave the call (what `tool_use` and `tool_result` blocks name). */
export function upstreamCallId(id: string): string {
  return CARRYING.exec(id)?.[1] ?? id;
}

/** The thinking blocks an id carries, exactly as Anthropic sent them; none when it carries none. */
export function thinkingOf(id: string): SignedThinking[] {
  const payload = CARRYING.exec(id)?.[2];
  if (payload === undefined || payload.length > MAX_CARRYING_ID) return [];
  let parsed: unknown;
  try {
    const json = inflateRawSync(Buffer.from(payload, "base64url"), { maxOutputLength: MAX_INFLATED_BYTES });
    parsed = JSON.parse(json.toString("utf8"));
  } catch {
    return [];
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > MAX_BLOCKS) return [];
  const blocks: SignedThinking[] = [];
  for (const item of parsed as unknown[]) {
    const block = blockOf(item);
    if (!block) return [];
    blocks.push(block);
  }
  return blocks;
}

function blockOf(item: unknown): SignedThinking | undefined {
  if (!Array.isArray(item) || !item.every((field) => typeof field === "string")) return undefined;
  const [kind, first, second] = item as string[];
  if (kind === "t" && item.length === 3 && second) {
    return { type: "thinking", thinking: first as string, signature: second };
  }
  if (kind === "r" && item.length === 2 && first) return { type: "redacted_thinking", data: first };
  return undefined;
}
