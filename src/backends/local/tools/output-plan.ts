/**
 * What a chat request's output must look like, turned into what a local engine and the output
 * reader need: the tools the template renders, the grammar every sampled token keeps to, and how
 * the output is split back into reasoning, text and calls.
 *
 * | tool_choice                  | response_format | grammar                                    |
 * |------------------------------|-----------------|--------------------------------------------|
 * | none / no tools              | text            | none                                       |
 * | none / no tools              | json            | the answer's JSON                          |
 * | auto                         | text            | lazy: free text until the calls' opener    |
 * | auto                         | json            | calls, or the answer's JSON                |
 * | required / named / allowed   | any             | calls (to the permitted tools)             |
 *
 * A reasoning model may think first: the grammar then admits the reasoning before what it holds.
 */
import { invalidRequest, unsupportedParameter } from "../../../core/errors.js";
import type { GenerationRequest } from "../../../core/generation.js";
import type { OutputConstraint, ToolDefinition } from "../../../core/messages.js";
import {
  composeGrammar,
  type GrammarNode,
  literal,
  oneOf,
  repeat,
  sequence,
} from "../../../grammar/compose-grammar.js";
import type { ChatTemplate, RenderOptions } from "../chat-template.js";
import type { EngineGrammar } from "../engine.js";
import { type OutputReaderOptions, type ReasoningMode, THINK_CLOSE, THINK_OPEN } from "./output-reader.js";
import type { ToolSyntax } from "./tool-syntax.js";

/** How the template is rendered for this request. */
export function renderOptionsFor(
  req: GenerationRequest,
  template: ChatTemplate,
  syntax: ToolSyntax,
): RenderOptions {
  const tools = req.constraint?.tools;
  return {
    syntax,
    ...(tools && tools.choice.mode !== "none" ? { tools: tools.definitions } : {}),
    ...(req.reasoningEffort ? { variables: reasoningVariables(req.reasoningEffort, template) } : {}),
  };
}

/** The template's own reasoning switch, set from reasoning_effort; a template without one refuses it. */
function reasoningVariables(
  effort: NonNullable<GenerationRequest["reasoningEffort"]>,
  template: ChatTemplate,
): Record<string, unknown> {
  const variables: Record<string, unknown> = {};
  if (template.reads("enable_thinking"))
    variables.enable_thinking = effort !== "none" && effort !== "minimal";
  if (template.reads("reasoning_effort")) variables.reasoning_effort = effort;
  if (Object.keys(variables).length === 0) {
    throw unsupportedParameter(
      "reasoning_effort",
      "This model's chat template has no reasoning switch, so reasoning_effort cannot be honoured.",
    );
  }
  return variables;
}

/** Where the rendered prompt leaves the model: inside reasoning, free to reason, or past it. */
export function reasoningModeOf(template: ChatTemplate, promptTail: string): ReasoningMode {
  if (!template.source.includes(THINK_OPEN)) return "off";
  const tail = promptTail.trimEnd();
  if (tail.endsWith(THINK_OPEN)) return "open";
  if (tail.endsWith(THINK_CLOSE)) return "off";
  return "optional";
}

export interface OutputPlan {
  grammar?: EngineGrammar;
  reader: OutputReaderOptions;
}

export function planOutput(
  constraint: OutputConstraint | undefined,
  syntax: ToolSyntax,
  reasoning: ReasoningMode,
): OutputPlan {
  const tools = constraint?.tools;
  const callable = tools ? permittedTools(tools) : undefined;
  const reader: OutputReaderOptions = {
    reasoning,
    ...(callable ? { toolOpener: syntax.opener, argumentsKey: syntax.argumentsKey } : {}),
  };
  const answer = constraint?.format ? answerGrammar(constraint.format) : undefined;
  if (!callable || !tools) {
    return answer
      ? { reader, grammar: { gbnf: composeGrammar(afterReasoning(reasoning, answer)) } }
      : { reader };
  }
  const calls = syntax.callsGrammar(callable.tools, tools.parallel, (name) => parametersParam(tools, name));
  if (callable.mustCall)
    return { reader, grammar: { gbnf: composeGrammar(afterReasoning(reasoning, calls)) } };
  if (answer) {
    return { reader, grammar: { gbnf: composeGrammar(afterReasoning(reasoning, oneOf(calls, answer))) } };
  }
  // Free text, or calls from their opener on: the grammar takes over when the opener appears.
  return { reader, grammar: { gbnf: composeGrammar(calls), lazy: { words: [syntax.opener], patterns: [] } } };
}

/** The tools the model may call now, and whether it must call one; undefined = none. */
function permittedTools(
  tools: NonNullable<OutputConstraint["tools"]>,
): { tools: ToolDefinition[]; mustCall: boolean } | undefined {
  const choice = tools.choice;
  switch (choice.mode) {
    case "none":
      return undefined;
    case "auto":
      return { tools: tools.definitions, mustCall: false };
    case "required":
      return { tools: tools.definitions, mustCall: true };
    case "named":
      return { tools: tools.definitions.filter((tool) => tool.name === choice.name), mustCall: true };
    case "allowed": {
      const allowed = new Set(choice.names);
      return { tools: tools.definitions.filter((tool) => allowed.has(tool.name)), mustCall: choice.required };
    }
  }
}

function parametersParam(tools: NonNullable<OutputConstraint["tools"]>, name: string): string {
  const index = tools.definitions.findIndex((tool) => tool.name === name);
  const tool = tools.definitions[index];
  return tool?.param ?? `${tools.param}[${index}].parameters`;
}

function answerGrammar(format: NonNullable<OutputConstraint["format"]>): GrammarNode {
  const value = format.value;
  if (value.type === "json_object") return { kind: "json-object" };
  return {
    kind: "schema",
    schema: value.schema,
    strict: value.strict,
    param: format.schemaParam ?? `${format.param}.schema`,
  };
}

/** `body`, after the reasoning a reasoning model may (or, with the prompt open, must) finish first. */
function afterReasoning(reasoning: ReasoningMode, body: GrammarNode): GrammarNode {
  if (reasoning === "off") return body;
  const thought = sequence({ kind: "text-until", end: THINK_CLOSE }, repeat(literal("\n"), 0, 2));
  if (reasoning === "open") return sequence(thought, body);
  return sequence(repeat(sequence(literal(THINK_OPEN), thought), 0, 1), body);
}

/** A tool list the template will render must not be empty after filtering (allowed_tools). */
export function assertCallable(constraint: OutputConstraint | undefined): void {
  const tools = constraint?.tools;
  if (!tools) return;
  const callable = permittedTools(tools);
  if (callable && callable.tools.length === 0) {
    throw invalidRequest("tool_choice permits no tool that is among the tools.", "tool_choice");
  }
}
