import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, listModels, type ModelInfo, streamEvents } from "./api.js";
import {
  buildChatRequest,
  EMPTY_OBJECT_SCHEMA,
  type FormatDraft,
  fieldIds,
  fieldOfParam,
  type Sampling,
  type ToolSettings,
  type Turn,
} from "./chat-request.js";
import { applyChunk, emptyReply, type StreamedReply } from "./chat-stream.js";
import { CopyButton } from "./copy-button.js";
import { FieldMessage, FormatEditor, type ShownProblems, ToolsEditor } from "./output-editors.js";
import { ReplyView } from "./reply-view.js";
import { curlCommand, sdkCode } from "./request-code.js";

const CHAT_PATH = "/v1/chat/completions";

/** A server's refusal of a field, shown next to that field until the request changes. */
interface ServerProblem {
  field: string;
  message: string;
  /** The request it was about: any edit makes it stale. */
  body: string;
}

export function Playground() {
  const [models, setModels] = useState<ModelInfo[]>([]);
  const [model, setModel] = useState("");
  const [loadError, setLoadError] = useState("");
  const [system, setSystem] = useState("");
  const [turns, setTurns] = useState<Turn[]>([{ role: "user", content: "" }]);
  const [sampling, setSampling] = useState<Sampling>({
    temperature: "",
    top_p: "",
    max_tokens: "256",
    seed: "",
    stop: "",
    top_logprobs: "",
  });
  const [tools, setTools] = useState<ToolSettings>({ tools: [], choice: "", parallel: "" });
  const [format, setFormat] = useState<FormatDraft>({
    type: "text",
    name: "",
    description: "",
    schema: EMPTY_OBJECT_SCHEMA,
    strict: true,
  });
  const [reply, setReply] = useState<StreamedReply | null>(null);
  const [error, setError] = useState("");
  const [tried, setTried] = useState(false);
  const [serverProblem, setServerProblem] = useState<ServerProblem | null>(null);
  const [running, setRunning] = useState(false);
  /** Counts sends, so each reply's view (and the tool results typed into it) starts afresh. */
  const [runCount, setRunCount] = useState(0);
  const [code, setCode] = useState<"curl" | "sdk" | null>(null);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    const load = () =>
      listModels()
        .then((list) => {
          setModels(list);
          setLoadError("");
          setModel((current) => (list.some((m) => m.id === current) ? current : (list[0]?.id ?? "")));
        })
        .catch((e: unknown) => setLoadError(e instanceof Error ? e.message : String(e)));
    void load();
    window.addEventListener("switchboard-key", load);
    return () => {
      window.removeEventListener("switchboard-key", load);
      abort.current?.abort();
    };
  }, []);

  const form = { model, system, turns, sampling, tools, format };
  const { body, problems } = buildChatRequest(form);
  const bodyText = JSON.stringify(body);
  const shown = new Map<string, string>();
  if (serverProblem && serverProblem.body === bodyText) shown.set(serverProblem.field, serverProblem.message);
  for (const p of problems) if (p.live || tried) shown.set(p.field, p.message);

  /** Sends the conversation `withTurns` (the form's own, or one just extended by tool results). */
  const run = async (withTurns: Turn[]) => {
    if (running) return;
    const request = buildChatRequest({ ...form, turns: withTurns });
    if (request.problems.length > 0) {
      // Never a broken request: the fields say what to fix, and the first one gets the focus.
      setTried(true);
      setError(
        `Not sent: ${request.problems.length === 1 ? "a field needs" : `${request.problems.length} fields need`} fixing.`,
      );
      document.getElementById(request.problems[0]?.field ?? "")?.focus();
      return;
    }
    const controller = new AbortController();
    abort.current = controller;
    setRunning(true);
    setRunCount((n) => n + 1);
    setError("");
    setServerProblem(null);
    const started = performance.now();
    let firstAt: number | undefined;
    const current = emptyReply();
    setReply({ ...current });
    try {
      for await (const chunk of streamEvents(CHAT_PATH, request.body, controller.signal)) {
        if (applyChunk(current, chunk)) {
          firstAt ??= performance.now();
          current.timeToFirstTokenMs = firstAt - started;
        }
        setReply({ ...current, calls: current.calls.map((c) => ({ ...c })) });
      }
      const seconds = firstAt === undefined ? 0 : (performance.now() - firstAt) / 1000;
      const generated = current.usage?.completion_tokens ?? 0;
      // Tokens after the first, over the time since it came: the decode rate, without the prompt's time.
      if (seconds > 0 && generated > 1) current.tokensPerSecond = (generated - 1) / seconds;
      setReply({ ...current });
    } catch (e) {
      if (controller.signal.aborted) return;
      setError(e instanceof ApiError ? e.message : String(e));
      const field = e instanceof ApiError ? fieldOfParam(e.param) : undefined;
      if (field && e instanceof ApiError)
        setServerProblem({ field, message: e.message, body: JSON.stringify(request.body) });
    } finally {
      setRunning(false);
      abort.current = null;
    }
  };

  const send = (event: Event) => {
    event.preventDefault();
    void run(turns);
  };

  const setTurn = (index: number, turn: Partial<Turn>) =>
    setTurns(turns.map((t, i) => (i === index ? { ...t, ...turn } : t)));
  const assistantTurn = (r: StreamedReply): Turn => ({
    role: "assistant",
    content: r.text,
    ...(r.calls.length > 0 && {
      toolCalls: r.calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
    }),
  });
  const keepReply = () => {
    if (!reply?.text) return;
    setTurns([...turns, assistantTurn(reply), { role: "user", content: "" }]);
    setReply(null);
  };
  const continueWithResults = (results: string[]) => {
    if (!reply) return;
    const next: Turn[] = [
      ...turns,
      assistantTurn(reply),
      ...reply.calls.map((call, i) => ({
        role: "tool" as const,
        content: results[i] ?? "",
        toolCallId: call.id,
        toolName: call.name,
      })),
    ];
    setTurns(next);
    setReply(null);
    void run(next);
  };
  const field = (name: keyof Sampling, label: string, attrs: Record<string, string | number>) => (
    <label class="field">
      <span>{label}</span>
      <input
        name={name}
        type="number"
        inputMode="decimal"
        value={sampling[name]}
        placeholder="default"
        onInput={(e) => setSampling({ ...sampling, [name]: e.currentTarget.value })}
        {...attrs}
      />
    </label>
  );

  return (
    <section aria-labelledby="playground-title" class="playground">
      <h1 id="playground-title">Playground</h1>
      {loadError && (
        <p class="error" role="alert">
          Models could not be listed: {loadError}
        </p>
      )}
      <form class="grid" onSubmit={send} noValidate>
        <div class="column">
          <label class="field">
            <span>Model</span>
            <select name="model" value={model} onChange={(e) => setModel(e.currentTarget.value)}>
              {models.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                </option>
              ))}
            </select>
          </label>
          <label class="field">
            <span>System prompt</span>
            <textarea
              name="system"
              rows={2}
              value={system}
              onInput={(e) => setSystem(e.currentTarget.value)}
            />
          </label>
          <fieldset>
            <legend>Messages</legend>
            {turns.map((turn, i) => (
              <TurnEditor
                key={i}
                index={i}
                turn={turn}
                only={turns.length === 1}
                problems={shown}
                onChange={(change) => setTurn(i, change)}
                onRemove={() => setTurns(turns.filter((_, j) => j !== i))}
              />
            ))}
            <button
              type="button"
              class="quiet"
              onClick={() => setTurns([...turns, { role: "user", content: "" }])}
            >
              Add message
            </button>
          </fieldset>
          <ToolsEditor value={tools} onChange={setTools} problems={shown} />
          <FormatEditor value={format} onChange={setFormat} problems={shown} />
        </div>
        <div class="column">
          <fieldset class="sampling">
            <legend>Sampling</legend>
            {field("temperature", "Temperature", { min: 0, max: 2, step: 0.1 })}
            {field("top_p", "Top p", { min: 0, max: 1, step: 0.05 })}
            {field("max_tokens", "Max tokens", { min: 1, step: 1 })}
            {field("seed", "Seed", { step: 1 })}
            {field("top_logprobs", "Log probs: alternatives", { min: 0, max: 20, step: 1 })}
            <label class="field wide">
              <span>Stop sequences (one a line)</span>
              <textarea
                name="stop"
                rows={2}
                value={sampling.stop}
                onInput={(e) => setSampling({ ...sampling, stop: e.currentTarget.value })}
              />
            </label>
          </fieldset>
          <div class="actions">
            <button type="submit" disabled={running || !model}>
              {running ? "Generating…" : "Send"}
            </button>
            {running && (
              <button type="button" class="quiet" onClick={() => abort.current?.abort()}>
                Stop
              </button>
            )}
            <button
              type="button"
              class="quiet"
              aria-pressed={code === "curl"}
              onClick={() => {
                setTried(true);
                setCode(code === "curl" ? null : "curl");
              }}
            >
              As curl
            </button>
            <button
              type="button"
              class="quiet"
              aria-pressed={code === "sdk"}
              onClick={() => {
                setTried(true);
                setCode(code === "sdk" ? null : "sdk");
              }}
            >
              As OpenAI SDK
            </button>
          </div>
          {code &&
            (problems.length > 0 ? (
              <p class="muted" data-testid="code-unavailable">
                The request has fields to fix first: each says what is wrong under it.
              </p>
            ) : (
              <CodeView
                text={
                  code === "curl"
                    ? curlCommand(location.origin, CHAT_PATH, body)
                    : sdkCode(location.origin, body)
                }
              />
            ))}
          {error && (
            <p class="error" role="alert" data-testid="send-error">
              {error}
            </p>
          )}
        </div>
      </form>
      {reply && (
        <ReplyView
          key={runCount}
          reply={reply}
          running={running}
          onKeep={keepReply}
          onToolResults={continueWithResults}
        />
      )}
    </section>
  );
}

/** One message: a role and its text; a kept tool-calling reply shows its calls, a tool message its call. */
function TurnEditor(props: {
  index: number;
  turn: Turn;
  only: boolean;
  problems: ShownProblems;
  onChange: (change: Partial<Turn>) => void;
  onRemove: () => void;
}) {
  const { index: i, turn } = props;
  const id = fieldIds.message(i);
  const message = props.problems.get(id);
  const fixedRole = turn.role === "tool" || (turn.toolCalls?.length ?? 0) > 0;
  return (
    <div class="turn" data-role={turn.role}>
      {fixedRole ? (
        <span class="role">
          <span class="visually-hidden">Role of message {i + 1}: </span>
          {turn.role}
        </span>
      ) : (
        <select
          aria-label={`Role of message ${i + 1}`}
          value={turn.role}
          onChange={(e) => props.onChange({ role: e.currentTarget.value as Turn["role"] })}
        >
          <option value="user">user</option>
          <option value="assistant">assistant</option>
        </select>
      )}
      <div class="turn-body">
        {turn.role === "tool" && (
          <span class="muted">
            Result of <code>{turn.toolName}</code> ({turn.toolCallId})
          </span>
        )}
        <textarea
          id={id}
          aria-label={`Message ${i + 1}`}
          name={id}
          rows={3}
          value={turn.content}
          placeholder={turn.toolCalls?.length ? "(no text with the calls)" : undefined}
          aria-invalid={message !== undefined}
          aria-describedby={message !== undefined ? `${id}-error` : undefined}
          onInput={(e) => props.onChange({ content: e.currentTarget.value })}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
          }}
        />
        <FieldMessage id={id} problems={props.problems} />
        {turn.toolCalls?.map((call) => (
          <pre class="kept-call" key={call.id}>
            {call.name}({call.arguments}) <span class="muted">{call.id}</span>
          </pre>
        ))}
      </div>
      <button
        type="button"
        class="quiet"
        aria-label={`Remove message ${i + 1}`}
        disabled={props.only}
        onClick={props.onRemove}
      >
        ✕
      </button>
    </div>
  );
}

function CodeView({ text }: { text: string }) {
  return (
    <div class="code">
      <pre data-testid="code">{text}</pre>
      <CopyButton text={text} label="Copy" />
    </div>
  );
}
