/**
 * How a model writes tool calls, by chat-template family. Each family has its own opening marker
 * and wrapper around a JSON object naming the function and carrying its arguments; the grammar we
 * build writes exactly that shape, and the output reader (tool-output-reader.ts) reads it back.
 *
 * - hermes: `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>` (Hermes, Qwen 2.5/3 and
 *   most fine-tunes that ship a tool template), one block per call.
 * - llama3: `{"name": …, "parameters": {…}}` (Llama 3.1-3.3 custom tools), one object per line.
 * - mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]` (Mistral v0.3, Nemo).
 * - generic: a template that knows no tools: the tools are described in a system message of ours
 *   and the model answers in the hermes shape.
 */
import { randomId } from "../../../core/ids.js";
import type { ToolDefinition } from "../../../core/messages.js";
import { type GrammarNode, literal, oneOf, repeat, sequence } from "../../../grammar/compose-grammar.js";

export type ToolFamily = "hermes" | "llama3" | "mistral" | "generic";

export interface ToolSyntax {
  readonly family: ToolFamily;
  /** Text every tool-call block starts with: the lazy grammar's trigger. */
  readonly opener: string;
  /** The key the arguments go under. */
  readonly argumentsKey: string;
  /** Whether the chat template renders `tools` and `tool_calls` itself. */
  readonly templateRendersTools: boolean;
  /** One or more calls (`parallel`) to any of `tools`. */
  callsGrammar(tools: readonly ToolDefinition[], parallel: boolean, param: ToolParam): GrammarNode;
  /** The call id as the template wants it (Mistral's templates insist on 9 alphanumerics). */
  templateCallId(id: string): string;
}

/** Where the tools sit in the request, for errors: `tools` with each tool's index. */
export type ToolParam = (name: string) => string;

export function toolSyntaxFor(template: string): ToolSyntax {
  if (template.includes("[TOOL_CALLS]")) return MISTRAL;
  if (template.includes("<tool_call>")) return HERMES;
  if (
    template.includes("<|python_tag|>") ||
    (template.includes("<|start_header_id|>") && mentionsTools(template))
  )
    return LLAMA3;
  return GENERIC;
}

function mentionsTools(template: string): boolean {
  return /\btools\b/.test(template) && /\btool_calls\b/.test(template);
}

/** `{"name": "<name>", "<key>": <arguments>}` for each tool, as alternatives. */
function callObject(tools: readonly ToolDefinition[], key: string, param: ToolParam): GrammarNode {
  return oneOf(
    ...tools.map((tool) =>
      sequence(
        literal(`{"name": ${JSON.stringify(tool.name)}, ${JSON.stringify(key)}: `),
        argumentsGrammar(tool, param(tool.name)),
        literal("}"),
      ),
    ),
  );
}

function argumentsGrammar(tool: ToolDefinition, param: string): GrammarNode {
  if (!tool.parameters) return { kind: "json-object" };
  return { kind: "schema", schema: tool.parameters, strict: tool.strict, param };
}

const keepId = (id: string): string => id;

const taggedCalls = (family: "hermes" | "generic", rendersTools: boolean): ToolSyntax => ({
  family,
  opener: "<tool_call>",
  argumentsKey: "arguments",
  templateRendersTools: rendersTools,
  callsGrammar(tools, parallel, param) {
    const block = sequence(
      literal("<tool_call>\n"),
      callObject(tools, "arguments", param),
      literal("\n</tool_call>"),
    );
    return parallel ? sequence(block, repeat(sequence(literal("\n"), block), 0, null)) : block;
  },
  templateCallId: keepId,
});

const HERMES = taggedCalls("hermes", true);
const GENERIC = taggedCalls("generic", false);

const LLAMA3: ToolSyntax = {
  family: "llama3",
  opener: '{"name": ',
  argumentsKey: "parameters",
  templateRendersTools: true,
  callsGrammar(tools, parallel, param) {
    const call = callObject(tools, "parameters", param);
    return parallel ? sequence(call, repeat(sequence(literal("\n"), call), 0, null)) : call;
  },
  templateCallId: keepId,
};

const MISTRAL: ToolSyntax = {
  family: "mistral",
  opener: "[TOOL_CALLS]",
  argumentsKey: "arguments",
  templateRendersTools: true,
  callsGrammar(tools, parallel, param) {
    const call = callObject(tools, "arguments", param);
    const calls = parallel ? sequence(call, repeat(sequence(literal(", "), call), 0, null)) : call;
    return sequence(literal("[TOOL_CALLS]["), calls, literal("]"));
  },
  templateCallId: mistralCallId,
};

const ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A stable 9-character alphanumeric stand-in for any call id (FNV-1a over its characters). */
function mistralCallId(id: string): string {
  if (/^[A-Za-z0-9]{9}$/.test(id)) return id;
  let hash = 0xcbf29ce484222325n;
  for (const char of id)
    hash = ((hash ^ BigInt(char.codePointAt(0) as number)) * 0x100000001b3n) & 0xffffffffffffffffn;
  let out = "";
  for (let i = 0; i < 9; i++) {
    out += ID_ALPHABET[Number(hash % 62n)];
    hash /= 62n;
  }
  return out;
}

/** An id for a call the model made, as OpenAI spells them. */
export const newToolCallId = (): string => `call_${randomId(24)}`;
