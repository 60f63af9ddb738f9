/** The top-level fields of OpenAI's CreateChatCompletionRequest this bench's requests may carry. */
const CHAT_FIELDS = new Set([
  "model",
  "messages",
  "stream",
  "stream_options",
  "temperature",
  "top_p",
  "n",
  "max_tokens",
  "max_completion_tokens",
  "stop",
  "seed",
  "presence_penalty",
  "frequency_penalty",
]);
const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

/**
 * What is wrong with a chat request by OpenAI's rules, as far as this bench's requests go (the
 * test mocks check the whole OpenAPI schema; this is the cheap part of it, run on every request):
 * a cut on the hot path that changed what goes upstream fails the run with a 400 instead of
 * measuring a different request.
 */
export function chatRequestProblem(body: unknown): string | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return "the body is not an object";
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).find((key) => !CHAT_FIELDS.has(key));
  if (unknown !== undefined) return `unknown field ${unknown}`;
  if (typeof b.model !== "string" || b.model === "") return "model must be a non-empty string";
  if (!Array.isArray(b.messages) || b.messages.length === 0) return "messages must be a non-empty array";
  for (const [i, m] of (b.messages as Record<string, unknown>[]).entries()) {
    if (m === null || typeof m !== "object" || !ROLES.has(m.role as string)) return `messages[${i}].role`;
    const content = m.content;
    const parts =
      Array.isArray(content) && content.every((p) => p?.type === "text" && typeof p.text === "string");
    if (typeof content !== "string" && !parts) return `messages[${i}].content`;
  }
  if (b.stream !== undefined && typeof b.stream !== "boolean") return "stream must be a boolean";
  if (b.stream_options !== undefined) {
    const options = b.stream_options as Record<string, unknown> | null;
    if (b.stream !== true) return "stream_options is only allowed with stream: true";
    if (options === null || typeof options !== "object" || typeof options.include_usage !== "boolean")
      return "stream_options.include_usage must be a boolean";
  }
  const number = (name: string, min: number, max: number, integer = false) => {
    const v = b[name];
    if (v === undefined || v === null) return undefined;
    const ok = typeof v === "number" && v >= min && v <= max && (!integer || Number.isInteger(v));
    return ok ? undefined : `${name} out of range`;
  };
  return (
    number("temperature", 0, 2) ??
    number("top_p", 0, 1) ??
    number("n", 1, 128, true) ??
    number("max_tokens", 1, Number.MAX_SAFE_INTEGER, true) ??
    number("max_completion_tokens", 1, Number.MAX_SAFE_INTEGER, true)
  );
}
