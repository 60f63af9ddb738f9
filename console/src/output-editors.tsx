import {
  EMPTY_OBJECT_SCHEMA,
  type FormatDraft,
  fieldIds,
  type ToolDraft,
  type ToolSettings,
} from "./chat-request.js";

/** Messages to show, by the id of the field they are about. */
export type ShownProblems = ReadonlyMap<string, string>;

/** The attributes that tie a field to its message (screen readers read it with the field). */
function invalidAttrs(id: string, problems: ShownProblems) {
  const message = problems.get(id);
  return message === undefined
    ? { id, "aria-invalid": false }
    : { id, "aria-invalid": true, "aria-describedby": `${id}-error` };
}

export function FieldMessage({ id, problems }: { id: string; problems: ShownProblems }) {
  const message = problems.get(id);
  if (message === undefined) return null;
  return (
    <span class="field-error" id={`${id}-error`} data-testid={`${id}-error`}>
      {message}
    </span>
  );
}

function TextField(props: {
  id: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  problems: ShownProblems;
  placeholder?: string;
}) {
  return (
    <label class="field">
      <span>{props.label}</span>
      <input
        {...invalidAttrs(props.id, props.problems)}
        spellcheck={false}
        autocomplete="off"
        value={props.value}
        placeholder={props.placeholder}
        onInput={(e) => props.onInput(e.currentTarget.value)}
      />
      <FieldMessage id={props.id} problems={props.problems} />
    </label>
  );
}

/** A JSON text area: monospace, no spell check, its parse error right under it. */
function JsonField(props: {
  id: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  problems: ShownProblems;
  rows?: number;
}) {
  return (
    <label class="field">
      <span>{props.label}</span>
      <textarea
        {...invalidAttrs(props.id, props.problems)}
        class="json"
        rows={props.rows ?? 6}
        spellcheck={false}
        autocomplete="off"
        value={props.value}
        onInput={(e) => props.onInput(e.currentTarget.value)}
      />
      <FieldMessage id={props.id} problems={props.problems} />
    </label>
  );
}

const NEW_TOOL: ToolDraft = { name: "", description: "", parameters: EMPTY_OBJECT_SCHEMA, strict: false };

export function ToolsEditor(props: {
  value: ToolSettings;
  onChange: (value: ToolSettings) => void;
  problems: ShownProblems;
}) {
  const { tools, choice, parallel } = props.value;
  const setTool = (index: number, change: Partial<ToolDraft>) =>
    props.onChange({ ...props.value, tools: tools.map((t, i) => (i === index ? { ...t, ...change } : t)) });
  const remove = (index: number) => {
    const rest = tools.filter((_, i) => i !== index);
    // A choice that no longer has a tool to point at goes back to the default.
    props.onChange({ ...props.value, tools: rest, choice: rest.length === 0 ? "" : choice });
  };
  const named = tools.map((t) => t.name.trim()).filter((n) => n !== "");
  return (
    <details class="editor" open={tools.length > 0} data-testid="tools-editor">
      <summary>Tools{tools.length > 0 ? ` (${tools.length})` : ""}</summary>
      <p class="muted">
        Function tools the model may call. Parameters are a JSON Schema; <em>strict</em> holds the arguments
        to it.
      </p>
      {tools.map((tool, i) => (
        <fieldset class="tool" key={i} data-testid="tool">
          <legend>Tool {i + 1}</legend>
          <TextField
            id={fieldIds.toolName(i)}
            label="Function name"
            value={tool.name}
            placeholder="get_weather"
            onInput={(name) => setTool(i, { name })}
            problems={props.problems}
          />
          <label class="field">
            <span>Description</span>
            <textarea
              rows={2}
              value={tool.description}
              onInput={(e) => setTool(i, { description: e.currentTarget.value })}
            />
          </label>
          <JsonField
            id={fieldIds.toolParameters(i)}
            label="Parameters (JSON Schema; empty = none)"
            value={tool.parameters}
            onInput={(parameters) => setTool(i, { parameters })}
            problems={props.problems}
          />
          <div class="editor-row">
            <label class="check">
              <input
                type="checkbox"
                checked={tool.strict}
                onChange={(e) => setTool(i, { strict: e.currentTarget.checked })}
              />
              strict
            </label>
            <button type="button" class="quiet" onClick={() => remove(i)}>
              Remove tool {i + 1}
            </button>
          </div>
        </fieldset>
      ))}
      <div class="editor-row">
        <button
          type="button"
          class="quiet"
          onClick={() => props.onChange({ ...props.value, tools: [...tools, { ...NEW_TOOL }] })}
        >
          Add tool
        </button>
      </div>
      <div class="editor-row">
        <label class="field">
          <span>Tool choice</span>
          <select
            {...invalidAttrs(fieldIds.toolChoice, props.problems)}
            name="tool_choice"
            value={choice}
            disabled={tools.length === 0}
            onChange={(e) => props.onChange({ ...props.value, choice: e.currentTarget.value })}
          >
            <option value="">default (auto)</option>
            <option value="auto">auto</option>
            <option value="required">required</option>
            <option value="none">none</option>
            {named.map((name) => (
              <option key={name} value={`function:${name}`}>
                function: {name}
              </option>
            ))}
            {choice.startsWith("function:") && !named.includes(choice.slice(9)) && (
              <option value={choice}>function: {choice.slice(9)} (gone)</option>
            )}
          </select>
          <FieldMessage id={fieldIds.toolChoice} problems={props.problems} />
        </label>
        <label class="field">
          <span>Parallel tool calls</span>
          <select
            name="parallel_tool_calls"
            value={parallel}
            disabled={tools.length === 0}
            onChange={(e) => props.onChange({ ...props.value, parallel: e.currentTarget.value })}
          >
            <option value="">default (on)</option>
            <option value="true">on</option>
            <option value="false">off</option>
          </select>
        </label>
      </div>
    </details>
  );
}

export function FormatEditor(props: {
  value: FormatDraft;
  onChange: (value: FormatDraft) => void;
  problems: ShownProblems;
}) {
  const format = props.value;
  const set = (change: Partial<FormatDraft>) => props.onChange({ ...format, ...change });
  return (
    <details class="editor" open={format.type !== "text"} data-testid="format-editor">
      <summary>Structured output{format.type !== "text" ? ` (${format.type})` : ""}</summary>
      <label class="field">
        <span>Response format</span>
        <select
          name="response_format"
          value={format.type}
          onChange={(e) => set({ type: e.currentTarget.value as FormatDraft["type"] })}
        >
          <option value="text">text (default)</option>
          <option value="json_object">json_object: any JSON object</option>
          <option value="json_schema">json_schema: JSON valid against a schema</option>
        </select>
      </label>
      {format.type === "json_schema" && (
        <>
          <TextField
            id={fieldIds.formatName}
            label="Schema name"
            value={format.name}
            placeholder="answer"
            onInput={(name) => set({ name })}
            problems={props.problems}
          />
          <label class="field">
            <span>Description</span>
            <input value={format.description} onInput={(e) => set({ description: e.currentTarget.value })} />
          </label>
          <JsonField
            id={fieldIds.formatSchema}
            label="Schema (JSON Schema)"
            value={format.schema}
            rows={8}
            onInput={(schema) => set({ schema })}
            problems={props.problems}
          />
          <label class="check">
            <input
              type="checkbox"
              name="format_strict"
              checked={format.strict}
              onChange={(e) => set({ strict: e.currentTarget.checked })}
            />
            strict
          </label>
        </>
      )}
    </details>
  );
}
