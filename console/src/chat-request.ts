/**
 * The playground's form as a chat completions request, checked in the page first: a field the
 * server would refuse (text that is not JSON, a schema that is not an object, a tool without a
 * valid name) is named next to the field instead of being sent.
 */

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** A message of the conversation: typed text, a kept reply (maybe with tool calls), or a tool's result. */
export interface Turn {
  role: "user" | "assistant" | "tool";
  content: string;
  /** An assistant turn's calls, as the model made them. */
  toolCalls?: ToolCall[];
  /** A tool turn: the call it answers. */
  toolCallId?: string;
  toolName?: string;
}

export interface Sampling {
  temperature: string;
  top_p: string;
  max_tokens: string;
  seed: string;
  stop: string;
  /** Alternatives per token to show (0-20); empty = no log probabilities asked for. */
  top_logprobs: string;
}

/** One function tool as typed: the parameters are JSON Schema text. */
export interface ToolDraft {
  name: string;
  description: string;
  parameters: string;
  strict: boolean;
}

export interface ToolSettings {
  tools: ToolDraft[];
  /** "" = not sent (the server's default), "auto" | "none" | "required", or "function:NAME". */
  choice: string;
  /** "" = not sent, "true" | "false". */
  parallel: string;
}

export interface FormatDraft {
  type: "text" | "json_object" | "json_schema";
  name: string;
  description: string;
  schema: string;
  strict: boolean;
}

/** A field the request cannot be sent with; `field` is the id of its input. */
export interface Problem {
  field: string;
  message: string;
  /** Shown as the user types (bad JSON); the others once a send was tried (a field left empty). */
  live: boolean;
}

export interface ChatForm {
  model: string;
  system: string;
  turns: Turn[];
  sampling: Sampling;
  tools: ToolSettings;
  format: FormatDraft;
}

/** OpenAI's rule for function and schema names. */
const NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

export const EMPTY_OBJECT_SCHEMA =
  '{\n  "type": "object",\n  "properties": {},\n  "additionalProperties": false\n}';

/** Ids of the inputs problems point at. */
export const fieldIds = {
  message: (i: number) => `message-${i}`,
  toolName: (i: number) => `tool-${i}-name`,
  toolParameters: (i: number) => `tool-${i}-parameters`,
  toolChoice: "tool-choice",
  formatName: "format-name",
  formatSchema: "format-schema",
};

/**
 * Parses JSON typed into a field. The message says what is wrong and where (line and column, as
 * an editor counts them), so it can stand next to the field.
 */
export function parseJsonText(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    const position = /at position (\d+)/.exec(detail)?.[1];
    if (position === undefined || /\(line \d+ column \d+\)/.test(detail))
      return { error: `Not valid JSON: ${detail}` };
    const before = text.slice(0, Number(position));
    const line = before.split("\n").length;
    const column = Number(position) - before.lastIndexOf("\n");
    return { error: `Not valid JSON: ${detail} (line ${line}, column ${column})` };
  }
}

/** A JSON Schema typed into a field: it must be a JSON object. */
function parseSchema(text: string, field: string, problems: Problem[]): Record<string, unknown> | undefined {
  const parsed = parseJsonText(text);
  if ("error" in parsed) {
    problems.push({ field, message: parsed.error, live: true });
    return undefined;
  }
  const value = parsed.value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    problems.push({ field, message: "A JSON Schema is a JSON object ({ … }).", live: true });
    return undefined;
  }
  return value as Record<string, unknown>;
}

function checkName(name: string, field: string, what: string, problems: Problem[]): void {
  if (name === "") problems.push({ field, message: `Give the ${what} a name.`, live: false });
  else if (!NAME_PATTERN.test(name))
    problems.push({
      field,
      message: "Names are 1-64 letters, digits, underscores or hyphens.",
      live: true,
    });
}

/** A number field left empty is not sent, so the server's default applies. */
function numberOrUndefined(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

function wireMessage(turn: Turn) {
  if (turn.role === "tool") return { role: "tool", tool_call_id: turn.toolCallId, content: turn.content };
  if (turn.role === "assistant" && turn.toolCalls?.length) {
    return {
      role: "assistant",
      content: turn.content === "" ? null : turn.content,
      tool_calls: turn.toolCalls.map((c) => ({
        id: c.id,
        type: "function",
        function: { name: c.name, arguments: c.arguments },
      })),
    };
  }
  return { role: turn.role, content: turn.content };
}

function toolsPart(settings: ToolSettings, problems: Problem[]): Record<string, unknown> {
  const part: Record<string, unknown> = {};
  const seen = new Set<string>();
  const tools = settings.tools.map((tool, i) => {
    const name = tool.name.trim();
    checkName(name, fieldIds.toolName(i), "function", problems);
    if (name !== "" && seen.has(name))
      problems.push({ field: fieldIds.toolName(i), message: `Another tool is called ${name}.`, live: true });
    seen.add(name);
    const parameters =
      tool.parameters.trim() === ""
        ? undefined
        : parseSchema(tool.parameters, fieldIds.toolParameters(i), problems);
    return {
      type: "function",
      function: {
        name,
        ...(tool.description.trim() && { description: tool.description }),
        ...(parameters && { parameters }),
        ...(tool.strict && { strict: true }),
      },
    };
  });
  if (tools.length > 0) part.tools = tools;
  if (settings.choice.startsWith("function:")) {
    const name = settings.choice.slice("function:".length);
    if (!seen.has(name))
      problems.push({
        field: fieldIds.toolChoice,
        message: `No tool is called ${name} any more.`,
        live: true,
      });
    part.tool_choice = { type: "function", function: { name } };
  } else if (settings.choice !== "") {
    if (tools.length === 0)
      problems.push({ field: fieldIds.toolChoice, message: "Define a tool first.", live: true });
    part.tool_choice = settings.choice;
  }
  if (settings.parallel !== "" && tools.length > 0) part.parallel_tool_calls = settings.parallel === "true";
  return part;
}

function formatPart(format: FormatDraft, problems: Problem[]): Record<string, unknown> {
  if (format.type === "text") return {};
  if (format.type === "json_object") return { response_format: { type: "json_object" } };
  const name = format.name.trim();
  checkName(name, fieldIds.formatName, "schema", problems);
  const schema = parseSchema(format.schema, fieldIds.formatSchema, problems);
  return {
    response_format: {
      type: "json_schema",
      json_schema: {
        name,
        ...(format.description.trim() && { description: format.description }),
        ...(schema && { schema }),
        strict: format.strict,
      },
    },
  };
}

/** The request the form describes (always streamed, with usage), and what stops it being sent. */
export function buildChatRequest(form: ChatForm): { body: Record<string, unknown>; problems: Problem[] } {
  const problems: Problem[] = [];
  form.turns.forEach((turn, i) => {
    if (turn.role === "tool" && turn.content.trim() === "")
      problems.push({ field: fieldIds.message(i), message: "Enter what the tool returned.", live: false });
  });
  const { sampling } = form;
  const stop = sampling.stop
    .split("\n")
    .map((s) => s.replaceAll("\\n", "\n"))
    .filter((s) => s !== "");
  const body: Record<string, unknown> = {
    model: form.model,
    messages: [
      ...(form.system.trim() ? [{ role: "system", content: form.system }] : []),
      ...form.turns.map(wireMessage),
    ],
    stream: true,
    stream_options: { include_usage: true },
  };
  for (const name of ["temperature", "top_p", "max_tokens", "seed"] as const) {
    const value = numberOrUndefined(sampling[name]);
    if (value !== undefined) body[name] = value;
  }
  if (stop.length > 0) body.stop = stop;
  const top = numberOrUndefined(sampling.top_logprobs);
  if (top !== undefined) {
    body.logprobs = true;
    body.top_logprobs = top;
  }
  Object.assign(body, toolsPart(form.tools, problems), formatPart(form.format, problems));
  return { body, problems };
}

/**
 * The form field a server's 400 is about, from its `param` (`tools[1].function.parameters.…`,
 * `response_format.json_schema.schema.…`), so its message can stand next to that field too.
 */
export function fieldOfParam(param: string | null): string | undefined {
  if (!param) return undefined;
  const tool = /^tools\[(\d+)\]\.function\.(name|parameters)/.exec(param);
  if (tool) {
    const i = Number(tool[1]);
    return tool[2] === "name" ? fieldIds.toolName(i) : fieldIds.toolParameters(i);
  }
  if (param.startsWith("tool_choice")) return fieldIds.toolChoice;
  if (param.startsWith("response_format.json_schema.schema")) return fieldIds.formatSchema;
  if (param.startsWith("response_format.json_schema.name")) return fieldIds.formatName;
  return undefined;
}
