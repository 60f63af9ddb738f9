/**
 * Gemini's thought signatures, carried in the ids of the tool calls they came with.
 *
 * Gemini (3 and later, and 2.5 when thinking) returns an opaque `thoughtSignature` on the part of a
 * function call — on the first call only, when it makes several at once — and wants it back on that
 * same part when the conversation comes back; Gemini 3 answers 400 without it. An OpenAI client
 * sends back exactly one thing of a call: its id (in the assistant message's `tool_calls` and in each
 * tool message's `tool_call_id`). So the signature rides in the id, and the server keeps nothing:
 * any instance, after any restart, can put it back where Gemini expects it.
 *
 * An id is `call_<random>_ts_<signature>`, the signature's base64 written in the URL alphabet
 * without padding (ids stay `[A-Za-z0-9_-]`, which every provider accepts for a tool call id), or
 * `call_<random>_tsu_<base64url of its UTF-8>` for a signature that is not base64 as expected.
 */

const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const CARRIED = /^call_[A-Za-z0-9]+_ts(u?)_([A-Za-z0-9_-]+)$/;

/**
 * Google's documented stand-in for a call Gemini did not make (a conversation begun on another
 * model, or a call whose id lost its signature): it skips the check instead of failing the turn.
 */
export const SIGNATURE_VALIDATOR_SKIP = "skip_thought_signature_validator";

/** The id of a call that came with `signature`: `id` (of the form call_<base62>) carrying it. */
export function idWithThoughtSignature(id: string, signature: string): string {
  if (STANDARD_BASE64.test(signature)) {
    const url = signature.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    return `${id}_ts_${url}`;
  }
  return `${id}_tsu_${Buffer.from(signature, "utf8").toString("base64url")}`;
}

/** The signature a call's id carries, exactly as Gemini sent it; undefined when it carries none. */
export function thoughtSignatureOf(id: string): string | undefined {
  const carried = CARRIED.exec(id);
  if (!carried) return undefined;
  const payload = carried[2] as string;
  if (carried[1] === "u") return Buffer.from(payload, "base64url").toString("utf8");
  // Standard padded base64 is a multiple of 4 characters long; the padding is what completes it.
  const padding = "=".repeat((4 - (payload.length % 4)) % 4);
  return `${payload.replace(/-/g, "+").replace(/_/g, "/")}${padding}`;
}
