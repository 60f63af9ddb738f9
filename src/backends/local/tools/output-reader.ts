/**
 * Reads a model's output as it streams and splits it into what the API returns apart: reasoning
 * (`<think>…</think>`), the answer's text, and tool calls. Text that could still be the start of a
 * marker is held back until it is or cannot be, so no marker ever leaks into content.
 */
import { newToolCallId } from "./tool-syntax.js";

export type ReaderEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  /** The first event of call `index` has its id and name; later ones only more argument text. */
  | { type: "call"; index: number; id?: string; name?: string; argumentsDelta: string };

/**
 * `open`: the prompt ended inside `<think>`, so output starts as reasoning. `optional`: the model
 * may open with `<think>`. `off`: no reasoning markers are read.
 */
export type ReasoningMode = "open" | "optional" | "off";

export interface OutputReaderOptions {
  reasoning: ReasoningMode;
  /** Tool-call blocks start with this; undefined = tool calls are not read (text stays text). */
  toolOpener?: string;
  /** The key a call's arguments sit under (`arguments`, or `parameters` for Llama 3). */
  argumentsKey?: string;
  /** Makes call ids (tests fix them). */
  newCallId?: () => string;
}

export const THINK_OPEN = "<think>";
export const THINK_CLOSE = "</think>";

type Stage = "start" | "reasoning" | "after-reasoning" | "content" | "calls";

export class OutputReader {
  private stage: Stage;
  private held = "";
  private readonly calls: CallScanner | undefined;

  constructor(private readonly options: OutputReaderOptions) {
    this.stage =
      options.reasoning === "open" ? "reasoning" : options.reasoning === "optional" ? "start" : "content";
    this.calls = options.toolOpener
      ? new CallScanner(options.argumentsKey ?? "arguments", options.newCallId ?? newToolCallId)
      : undefined;
  }

  /** Whether the output is inside reasoning now (its tokens count as reasoning tokens). */
  get reasoning(): boolean {
    return this.stage === "reasoning";
  }

  /** Calls read so far (each with a name). */
  get callCount(): number {
    return this.calls?.count ?? 0;
  }

  push(text: string): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    this.held += text;
    this.drain(events, false);
    return events;
  }

  /** The output ended: what is held is released as it stands. */
  end(): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    this.drain(events, true);
    return events;
  }

  private drain(events: ReaderEvent[], final: boolean): void {
    for (;;) {
      const before = this.stage;
      const progress = this.step(events, final);
      if (!progress && before === this.stage) return;
    }
  }

  /** One stage's worth of work on the held text; true when it consumed something. */
  private step(events: ReaderEvent[], final: boolean): boolean {
    switch (this.stage) {
      case "start": {
        const text = this.held.trimStart();
        if (text.startsWith(THINK_OPEN)) {
          this.held = text.slice(THINK_OPEN.length);
          this.stage = "reasoning";
          return true;
        }
        if (!final && THINK_OPEN.startsWith(text)) return false;
        this.stage = "content";
        return true;
      }
      case "reasoning": {
        const at = this.held.indexOf(THINK_CLOSE);
        if (at >= 0) {
          emit(events, "reasoning", this.held.slice(0, at));
          this.held = this.held.slice(at + THINK_CLOSE.length);
          this.stage = "after-reasoning";
          return true;
        }
        const keep = final ? 0 : partialSuffix(this.held, THINK_CLOSE);
        emit(events, "reasoning", this.held.slice(0, this.held.length - keep));
        this.held = this.held.slice(this.held.length - keep);
        return false;
      }
      case "after-reasoning": {
        // The answer starts after the blank lines that follow the reasoning.
        const text = this.held.trimStart();
        this.held = text;
        if (text === "" && !final) return false;
        this.stage = "content";
        return true;
      }
      case "content":
        return this.readContent(events, final);
      case "calls":
        if (this.held) (this.calls as CallScanner).push(this.held, events);
        this.held = "";
        if (final) (this.calls as CallScanner).end(events);
        return false;
    }
  }

  private readContent(events: ReaderEvent[], final: boolean): boolean {
    const opener = this.options.toolOpener;
    if (opener === undefined || !this.calls) {
      emit(events, "content", this.held);
      this.held = "";
      return false;
    }
    const at = this.held.indexOf(opener);
    if (at >= 0) {
      emit(events, "content", this.held.slice(0, at));
      // The block is read from its opener on: some formats' opener is the call's own first text.
      this.held = this.held.slice(at);
      this.stage = "calls";
      return true;
    }
    const keep = final ? 0 : partialSuffix(this.held, opener);
    emit(events, "content", this.held.slice(0, this.held.length - keep));
    this.held = this.held.slice(this.held.length - keep);
    return false;
  }
}

function emit(events: ReaderEvent[], type: "content" | "reasoning", text: string): void {
  if (text === "") return;
  const last = events.at(-1);
  if (last?.type === type) last.text += text;
  else events.push({ type, text });
}

/** Length of the longest suffix of `text` that is a proper prefix of `marker`. */
function partialSuffix(text: string, marker: string): number {
  for (let length = Math.min(text.length, marker.length - 1); length > 0; length--) {
    if (marker.startsWith(text.slice(text.length - length))) return length;
  }
  return 0;
}

/**
 * Finds the call objects in a tool-call block (`{"name": …, "arguments": …}` at the top level;
 * tags, brackets and separators around them are skipped) and streams each call's arguments as
 * they arrive. The arguments' JSON text is passed on exactly as the model wrote it.
 */
class CallScanner {
  count = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Inside a call object (depth 1): reading a key, waiting for its value, in a value. */
  private phase: "key" | "colon" | "value" | "after-value" = "key";
  private key = "";
  private value: { key: string; text: string; started: boolean } | undefined;
  private call: { name?: string; pendingArguments: string; sawArguments: boolean } | undefined;

  constructor(
    private readonly argumentsKey: string,
    private readonly newCallId: () => string,
  ) {}

  push(text: string, events: ReaderEvent[]): void {
    for (const char of text) this.read(char, events);
  }

  /** The block ended (length, stop): a call cut short keeps what it had. */
  end(events: ReaderEvent[]): void {
    if (this.call?.name !== undefined && !this.call.sawArguments) this.argumentsText("{}", events);
    this.call = undefined;
  }

  private read(char: string, events: ReaderEvent[]): void {
    if (this.depth === 0) {
      if (char === "{") this.openCall();
      return;
    }
    if (this.inString) {
      this.append(char, events);
      if (this.escaped) this.escaped = false;
      else if (char === "\\") this.escaped = true;
      else if (char === '"') {
        this.inString = false;
        if (this.depth === 1 && this.phase === "key") this.phase = "colon";
        else if (this.depth === 1 && this.value) this.finishValue(events);
      }
      return;
    }
    const atTop = this.depth === 1;
    if (atTop && this.phase === "value" && this.value && !this.value.started && /\s/.test(char)) return;
    switch (char) {
      case '"':
        this.inString = true;
        if (atTop && this.phase === "key") this.key = "";
        this.append(char, events);
        return;
      case "{":
      case "[":
        this.depth++;
        this.append(char, events);
        return;
      case "}":
      case "]":
        if (atTop) {
          if (this.value) this.finishValue(events);
          this.closeCall(events);
          this.depth = 0;
          return;
        }
        this.depth--;
        this.append(char, events);
        if (this.depth === 1 && this.value) this.finishValue(events);
        return;
      case ":":
        if (atTop && this.phase === "colon") {
          this.phase = "value";
          this.value = { key: this.keyName(), text: "", started: false };
          return;
        }
        this.append(char, events);
        return;
      case ",":
        if (atTop) {
          if (this.value) this.finishValue(events);
          this.phase = "key";
          return;
        }
        this.append(char, events);
        return;
      default:
        if (atTop && !this.value) return;
        this.append(char, events);
    }
  }

  private openCall(): void {
    this.depth = 1;
    this.phase = "key";
    this.value = undefined;
    this.call = { pendingArguments: "", sawArguments: false };
  }

  private closeCall(events: ReaderEvent[]): void {
    this.end(events);
  }

  private keyName(): string {
    try {
      return JSON.parse(this.key) as string;
    } catch {
      return "";
    }
  }

  /** Text inside the current key or value. */
  private append(char: string, events: ReaderEvent[]): void {
    if (this.depth === 1 && this.phase === "key" && this.inString) {
      this.key += char;
      return;
    }
    const value = this.value;
    if (!value) return;
    value.started = true;
    value.text += char;
    if (value.key === this.argumentsKey) this.argumentsText(char, events);
  }

  private finishValue(events: ReaderEvent[]): void {
    const value = this.value as { key: string; text: string };
    this.value = undefined;
    this.phase = "after-value";
    const call = this.call;
    if (!call) return;
    if (value.key === this.argumentsKey) call.sawArguments = true;
    if (value.key === "name" && call.name === undefined) {
      let name = "";
      try {
        name = String(JSON.parse(value.text));
      } catch {
        return;
      }
      call.name = name;
      events.push({
        type: "call",
        index: this.count++,
        id: this.newCallId(),
        name,
        argumentsDelta: call.pendingArguments,
      });
      call.pendingArguments = "";
    }
  }

  /** Argument text goes out once the call's name is known, held until then. */
  private argumentsText(text: string, events: ReaderEvent[]): void {
    const call = this.call;
    if (!call) return;
    if (call.name === undefined) {
      call.pendingArguments += text;
      return;
    }
    const last = events.at(-1);
    if (last?.type === "call" && last.index === this.count - 1) last.argumentsDelta += text;
    else events.push({ type: "call", index: this.count - 1, argumentsDelta: text });
  }
}
