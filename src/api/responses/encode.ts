import type { FinishReason, GenerationPart, TokenLogprob, UsageCounts } from "../../core/generation.js";
import { randomId } from "../../core/ids.js";
import type { CreateResponseRequest } from "./schema.js";

/** What a response object says besides its output: the request's settings, echoed. */
export interface ResponseMeta {
  id: string;
  /** Unix seconds. */
  createdAt: number;
  /** The model name as the caller sent it. */
  model: string;
  request: CreateResponseRequest;
  store: boolean;
}

type Item = Record<string, unknown> & { id: string; type: string };

export type ResponseStatus = "queued" | "in_progress" | "completed" | "incomplete" | "failed" | "cancelled";

/** A failed response's `error`: what went wrong, without anything internal. */
export interface ResponseErrorObject {
  code: string;
  message: string;
}

/** A typed stream event: its `type` is also the SSE event name. */
export interface ResponseEvent {
  type: string;
  [field: string]: unknown;
}

/**
 * Builds a response's output items from generation parts, and the typed events that announce
 * them: reasoning, then the message's text, then function calls, each opened when its first part
 * arrives and closed when the next kind begins or the generation ends. The non-streamed response
 * is the same builder with its events dropped.
 */
export class ResponseBuilder {
  readonly output: Item[] = [];
  private open:
    | { item: Item; index: number; text: string; logprobs: TokenLogprob[]; refusal?: string }
    | undefined;
  private callIndex = -1;
  private finish: FinishReason | undefined;
  private usage: UsageCounts | undefined;
  /** Annotations of the message's text (file citations of a file search). */
  private annotations: object[] = [];

  constructor(
    private readonly meta: ResponseMeta,
    private readonly wantLogprobs: boolean,
  ) {}

  /** The response object as it stands (status given: in_progress while streaming, final at the end). */
  snapshot(status: ResponseStatus, completedAt: number | null, error: ResponseErrorObject | null = null) {
    const req = this.meta.request;
    const incomplete = status === "incomplete";
    const running = status === "in_progress" || status === "queued";
    return {
      id: this.meta.id,
      object: "response",
      created_at: this.meta.createdAt,
      status,
      background: req.background === true,
      completed_at: status === "completed" ? completedAt : null,
      error,
      incomplete_details: incomplete ? { reason: "max_output_tokens" } : null,
      instructions: req.instructions ?? null,
      max_output_tokens: req.max_output_tokens ?? null,
      max_tool_calls: null,
      model: this.meta.model,
      output: running ? [] : this.output,
      parallel_tool_calls: req.parallel_tool_calls ?? true,
      previous_response_id: req.previous_response_id ?? null,
      conversation:
        req.conversation == null
          ? null
          : { id: typeof req.conversation === "string" ? req.conversation : req.conversation.id },
      prompt_cache_key: req.prompt_cache_key ?? null,
      reasoning: { effort: req.reasoning?.effort ?? null, summary: req.reasoning?.summary ?? null },
      safety_identifier: req.safety_identifier ?? null,
      service_tier: "default",
      store: this.meta.store,
      temperature: req.temperature ?? 1,
      text: { format: req.text?.format ?? { type: "text" }, verbosity: "medium" },
      tool_choice: req.tool_choice ?? "auto",
      tools: (req.tools ?? []).map((tool) =>
        tool.type === "file_search"
          ? { ...tool, filters: tool.filters ?? null }
          : {
              type: "function",
              name: tool.name,
              description: tool.description ?? null,
              parameters: tool.parameters ?? null,
              strict: tool.strict ?? true,
            },
      ),
      top_logprobs: req.top_logprobs ?? 0,
      top_p: req.top_p ?? 1,
      truncation: req.truncation ?? "disabled",
      usage: running || !this.usage ? null : encodeUsage(this.usage),
      ...(req.user !== undefined ? { user: req.user } : {}),
      metadata: req.metadata ?? {},
    };
  }

  /**
   * Adds an item made before generation (a file search's call), with the annotations its results
   * put on the message; returns the events that announce it.
   */
  addHosted(item: Item, annotations: object[], announce: (item: Item, index: number) => ResponseEvent[]) {
    this.annotations = annotations;
    this.output.push(item);
    return announce(item, this.output.length - 1);
  }

  /** The status the finished response has. */
  get status(): "completed" | "incomplete" {
    return this.finish === "length" ? "incomplete" : "completed";
  }

  /** Adds a part; returns the events it makes (without sequence numbers). */
  add(part: GenerationPart): ResponseEvent[] {
    const events: ResponseEvent[] = [];
    switch (part.type) {
      case "reasoning":
        this.openItem("reasoning", events);
        this.appendText(part.text, undefined, events);
        break;
      case "text":
        this.openItem("message", events);
        this.appendText(part.text, part.logprobs, events);
        break;
      case "refusal":
        this.openItem("message", events);
        this.appendRefusal(part.text, events);
        break;
      case "tool-call":
        if (part.index !== this.callIndex) {
          this.callIndex = part.index;
          this.closeOpen(events);
          this.openCall(part.id ?? `call_${randomId()}`, part.name ?? "", events);
        }
        if (part.argumentsDelta) this.appendText(part.argumentsDelta, undefined, events);
        break;
      case "finish":
        this.finish = part.reason;
        this.closeOpen(events);
        break;
      case "usage":
        this.usage = part;
    }
    return events;
  }

  private openItem(type: "reasoning" | "message", events: ResponseEvent[]): void {
    if (this.open?.item.type === type) return;
    this.closeOpen(events);
    const item: Item =
      type === "reasoning"
        ? { id: `rs_${randomId()}`, type, summary: [], content: [], status: "in_progress" }
        : { id: `msg_${randomId()}`, type, status: "in_progress", role: "assistant", content: [] };
    const index = this.output.length;
    this.output.push(item);
    this.open = { item, index, text: "", logprobs: [] };
    events.push({ type: "response.output_item.added", output_index: index, item: { ...item } });
    const part = type === "reasoning" ? { type: "reasoning_text", text: "" } : emptyOutputText();
    events.push({
      type: "response.content_part.added",
      item_id: item.id,
      output_index: index,
      content_index: 0,
      part,
    });
  }

  private openCall(callId: string, name: string, events: ResponseEvent[]): void {
    const item: Item = {
      id: `fc_${randomId()}`,
      type: "function_call",
      status: "in_progress",
      arguments: "",
      call_id: callId,
      name,
    };
    const index = this.output.length;
    this.output.push(item);
    this.open = { item, index, text: "", logprobs: [] };
    events.push({ type: "response.output_item.added", output_index: index, item: { ...item } });
  }

  private appendText(text: string, logprobs: TokenLogprob[] | undefined, events: ResponseEvent[]): void {
    const open = this.open;
    if (!open || text === "") return;
    open.text += text;
    const item = open.item;
    if (logprobs) for (const entry of logprobs) open.logprobs.push(entry);
    if (item.type === "function_call") {
      events.push({
        type: "response.function_call_arguments.delta",
        item_id: item.id,
        output_index: open.index,
        delta: text,
      });
    } else if (item.type === "reasoning") {
      events.push({
        type: "response.reasoning_text.delta",
        item_id: item.id,
        output_index: open.index,
        content_index: 0,
        delta: text,
      });
    } else {
      events.push({
        type: "response.output_text.delta",
        item_id: item.id,
        output_index: open.index,
        content_index: 0,
        delta: text,
        logprobs: this.wantLogprobs && logprobs ? encodeLogprobs(logprobs) : [],
      });
    }
  }

  /** A refusal is a content part of its own after the text (index 1), as OpenAI's messages have it. */
  private appendRefusal(text: string, events: ResponseEvent[]): void {
    const open = this.open;
    if (!open || text === "") return;
    const { item, index } = open;
    if (open.refusal === undefined) {
      open.refusal = "";
      events.push({
        type: "response.content_part.added",
        item_id: item.id,
        output_index: index,
        content_index: 1,
        part: { type: "refusal", refusal: "" },
      });
    }
    open.refusal += text;
    events.push({
      type: "response.refusal.delta",
      item_id: item.id,
      output_index: index,
      content_index: 1,
      delta: text,
    });
  }

  private closeOpen(events: ResponseEvent[]): void {
    const open = this.open;
    if (!open) return;
    this.open = undefined;
    const { item, index, text } = open;
    // The last item of an answer cut off by max_output_tokens is incomplete.
    item.status = this.finish === "length" ? "incomplete" : "completed";
    if (item.type === "function_call") {
      item.arguments = text;
      events.push({
        type: "response.function_call_arguments.done",
        item_id: item.id,
        output_index: index,
        name: item.name,
        arguments: text,
      });
    } else if (item.type === "reasoning") {
      const part = { type: "reasoning_text", text };
      item.content = [part];
      events.push({
        type: "response.reasoning_text.done",
        item_id: item.id,
        output_index: index,
        content_index: 0,
        text,
      });
      events.push({
        type: "response.content_part.done",
        item_id: item.id,
        output_index: index,
        content_index: 0,
        part,
      });
    } else {
      const logprobs = this.wantLogprobs ? encodeLogprobs(open.logprobs) : [];
      const annotations = this.annotations;
      const part = { type: "output_text", text, annotations, logprobs };
      annotations.forEach((annotation, annotationIndex) => {
        events.push({
          type: "response.output_text.annotation.added",
          item_id: item.id,
          output_index: index,
          content_index: 0,
          annotation_index: annotationIndex,
          annotation,
        });
      });
      const refusal = open.refusal;
      item.content = refusal === undefined ? [part] : [part, { type: "refusal", refusal }];
      events.push({
        type: "response.output_text.done",
        item_id: item.id,
        output_index: index,
        content_index: 0,
        text,
        logprobs,
      });
      events.push({
        type: "response.content_part.done",
        item_id: item.id,
        output_index: index,
        content_index: 0,
        part,
      });
      if (refusal !== undefined) {
        const refusalPart = { type: "refusal", refusal };
        events.push({
          type: "response.refusal.done",
          item_id: item.id,
          output_index: index,
          content_index: 1,
          refusal,
        });
        events.push({
          type: "response.content_part.done",
          item_id: item.id,
          output_index: index,
          content_index: 1,
          part: refusalPart,
        });
      }
    }
    events.push({ type: "response.output_item.done", output_index: index, item: { ...item } });
  }
}

function emptyOutputText() {
  return { type: "output_text", text: "", annotations: [], logprobs: [] };
}

export function encodeUsage(usage: UsageCounts) {
  return {
    input_tokens: usage.promptTokens,
    input_tokens_details: { cached_tokens: usage.cachedTokens, cache_write_tokens: 0 },
    output_tokens: usage.completionTokens,
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 },
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

function encodeLogprobs(entries: readonly TokenLogprob[]) {
  return entries.map((e) => ({
    token: e.token,
    logprob: e.logprob,
    bytes: e.bytes,
    top_logprobs: e.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  }));
}

/** Numbers events in the order they go out and writes them with their type as the event name. */
export class EventSequencer {
  private next = 0;

  frame(event: ResponseEvent): { name: string; json: string } {
    return { name: event.type, json: JSON.stringify({ ...event, sequence_number: this.next++ }) };
  }
}
