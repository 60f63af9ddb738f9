import type { EngineEvent, TokenCandidate } from "../../engine.js";

type TokenEvent = Extract<EngineEvent, { type: "token" }>;
type EndEvent = Extract<EngineEvent, { type: "end" }>;

/**
 * Turns llama-server's streamed /completion messages into engine events.
 *
 * llama-server sends one message per sampled token with that token's id, its text and the count
 * of tokens generated so far, with two exceptions this makes up for: a token that ends inside a
 * multi-byte UTF-8 character gets no message (the token completing the character carries the
 * whole character), and the end-of-generation token gets a message with empty text. So a jump in
 * the count stands for tokens whose text arrived with the next one (counted, with empty text), and
 * a token without text is held until the next message says whether it ended the generation (it is
 * then dropped: end-of-generation tokens are not part of the output, as in-process).
 */
export class CompletionStream {
  private decoded = 0;
  private held: TokenEvent | undefined;
  /** Ids of the tokens llama-server named, in order (for the slot's prefix cache mirror). */
  readonly generated: number[] = [];

  /** `topLogprobs`: alternatives per token when log probabilities were asked for; undefined = none. */
  constructor(private readonly topLogprobs: number | undefined) {}

  /** Events for one message; the last one is `end` once the final message has arrived. */
  push(message: Record<string, unknown>): (TokenEvent | EndEvent)[] {
    const events: (TokenEvent | EndEvent)[] = [];
    if (message.stop === true) {
      const total = numberOr(message.tokens_predicted, this.decoded);
      const eos = message.stop_type === "eos";
      // Tokens still inside an unfinished character when the limit hit were never streamed.
      const filler = this.held?.token ?? this.generated.at(-1) ?? 0;
      for (; this.decoded < total - (eos && this.held ? 0 : eos ? 1 : 0); this.decoded++)
        events.push({ type: "token", token: filler, text: "" });
      if (this.held && !eos) events.push(this.held);
      this.held = undefined;
      events.push({ type: "end", reason: eos ? "stop" : "length" });
      return events;
    }
    // Prompt progress and the like carry no generated token (or the null token, -1).
    if (message.prompt_progress !== undefined) return events;
    const token = (message.tokens as number[] | undefined)?.[0];
    if (token === undefined || token < 0) return events;
    const total = numberOr(message.tokens_predicted, this.decoded + 1);
    if (this.held) {
      events.push(this.held);
      this.held = undefined;
    }
    for (; this.decoded < total - 1; this.decoded++) events.push({ type: "token", token, text: "" });
    this.decoded = Math.max(this.decoded, total);
    this.generated.push(token);
    const text = typeof message.content === "string" ? message.content : "";
    const event: TokenEvent = { type: "token", token, text };
    if (this.topLogprobs !== undefined) Object.assign(event, probabilities(message, this.topLogprobs, text));
    if (text === "") this.held = event;
    else events.push(event);
    return events;
  }
}

/** One token's entry in `completion_probabilities`. */
export interface ProbEntry {
  id: number;
  token?: string;
  bytes?: number[];
  logprob?: number;
  top_logprobs?: { id: number; token?: string; bytes?: number[]; logprob?: number }[];
}

/** The sampled token's log probability and the top alternatives, from a streamed message. */
function probabilities(
  message: Record<string, unknown>,
  top: number,
  text: string,
): { piece: string; logprob: number; top: TokenCandidate[] } {
  const entry = (message.completion_probabilities as ProbEntry[] | undefined)?.[0];
  return scoreOf(entry, top, text);
}

/** A token's text, log probability and top alternatives from its probabilities entry. */
export function scoreOf(
  entry: ProbEntry | undefined,
  top: number,
  text = entry?.token ?? "",
): { piece: string; logprob: number; top: TokenCandidate[] } {
  return {
    piece: entry?.bytes ? utf8(entry.bytes) : text,
    logprob: entry?.logprob ?? 0,
    top: (entry?.top_logprobs ?? []).slice(0, top).map((candidate) => ({
      token: candidate.id,
      text: candidate.bytes ? utf8(candidate.bytes) : (candidate.token ?? ""),
      logprob: candidate.logprob ?? -9999,
    })),
  };
}

function utf8(bytes: number[]): string {
  return Buffer.from(bytes).toString("utf8");
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" ? value : fallback;
}
