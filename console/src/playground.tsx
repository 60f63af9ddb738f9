import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, listModels, type ModelInfo, streamEvents } from "./api.js";
import { CopyButton } from "./copy-button.js";
import { curlCommand, sdkCode } from "./request-code.js";

type Role = "user" | "assistant";

interface Turn {
  role: Role;
  content: string;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** One sampled token and the alternatives the model weighed for it. */
interface TokenView {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

interface Result {
  text: string;
  tokens?: TokenView[];
  finishReason?: string;
  usage?: Usage;
  timeToFirstTokenMs?: number;
  tokensPerSecond?: number;
}

interface Sampling {
  temperature: string;
  top_p: string;
  max_tokens: string;
  seed: string;
  stop: string;
  /** Alternatives per token to show (0-20); empty = no log probabilities asked for. */
  top_logprobs: string;
}

const CHAT_PATH = "/v1/chat/completions";

/** A number field left empty is not sent, so the server's default applies. */
function numberOrUndefined(text: string): number | undefined {
  if (text.trim() === "") return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

export function chatRequest(model: string, system: string, turns: Turn[], sampling: Sampling) {
  const stop = sampling.stop
    .split("\n")
    .map((s) => s.replaceAll("\\n", "\n"))
    .filter((s) => s !== "");
  const body: Record<string, unknown> = {
    model,
    messages: [
      ...(system.trim() ? [{ role: "system", content: system }] : []),
      ...turns.map((t) => ({ role: t.role, content: t.content })),
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
  return body;
}

interface ChunkChoice {
  delta?: { content?: string | null };
  finish_reason?: string | null;
  logprobs?: {
    content?: { token: string; logprob: number; top_logprobs?: { token: string; logprob: number }[] }[];
  } | null;
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
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState("");
  const [running, setRunning] = useState(false);
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

  const body = chatRequest(model, system, turns, sampling);

  const send = async (event: Event) => {
    event.preventDefault();
    if (running) return;
    const controller = new AbortController();
    abort.current = controller;
    setRunning(true);
    setError("");
    const started = performance.now();
    let firstAt: number | undefined;
    const current: Result = { text: "" };
    setResult({ ...current });
    try {
      for await (const chunk of streamEvents(CHAT_PATH, body, controller.signal)) {
        const choice = (chunk.choices as ChunkChoice[] | undefined)?.[0];
        const delta = choice?.delta?.content;
        if (delta) {
          firstAt ??= performance.now();
          current.timeToFirstTokenMs = firstAt - started;
          current.text += delta;
        }
        for (const entry of choice?.logprobs?.content ?? []) {
          current.tokens ??= [];
          current.tokens.push({ token: entry.token, logprob: entry.logprob, top: entry.top_logprobs ?? [] });
        }
        if (choice?.finish_reason) current.finishReason = choice.finish_reason;
        if (chunk.usage) current.usage = chunk.usage as Usage;
        setResult({ ...current });
      }
      const seconds = firstAt === undefined ? 0 : (performance.now() - firstAt) / 1000;
      const generated = current.usage?.completion_tokens ?? 0;
      // Tokens after the first, over the time since it came: the decode rate, without the prompt's time.
      if (seconds > 0 && generated > 1) current.tokensPerSecond = (generated - 1) / seconds;
      setResult({ ...current });
    } catch (e) {
      if (!controller.signal.aborted) setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setRunning(false);
      abort.current = null;
    }
  };

  const setTurn = (index: number, turn: Partial<Turn>) =>
    setTurns(turns.map((t, i) => (i === index ? { ...t, ...turn } : t)));
  const keepReply = () => {
    if (!result?.text) return;
    setTurns([...turns, { role: "assistant", content: result.text }, { role: "user", content: "" }]);
    setResult(null);
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
      <form class="grid" onSubmit={send}>
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
              <div class="turn" key={i}>
                <select
                  aria-label={`Role of message ${i + 1}`}
                  value={turn.role}
                  onChange={(e) => setTurn(i, { role: e.currentTarget.value as Role })}
                >
                  <option value="user">user</option>
                  <option value="assistant">assistant</option>
                </select>
                <textarea
                  aria-label={`Message ${i + 1}`}
                  name={`message-${i}`}
                  rows={3}
                  value={turn.content}
                  onInput={(e) => setTurn(i, { content: e.currentTarget.value })}
                  onKeyDown={(e) => {
                    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
                  }}
                />
                <button
                  type="button"
                  class="quiet"
                  aria-label={`Remove message ${i + 1}`}
                  disabled={turns.length === 1}
                  onClick={() => setTurns(turns.filter((_, j) => j !== i))}
                >
                  ✕
                </button>
              </div>
            ))}
            <button
              type="button"
              class="quiet"
              onClick={() => setTurns([...turns, { role: "user", content: "" }])}
            >
              Add message
            </button>
          </fieldset>
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
              onClick={() => setCode(code === "curl" ? null : "curl")}
            >
              As curl
            </button>
            <button
              type="button"
              class="quiet"
              aria-pressed={code === "sdk"}
              onClick={() => setCode(code === "sdk" ? null : "sdk")}
            >
              As OpenAI SDK
            </button>
          </div>
          {code && (
            <CodeView
              text={
                code === "curl"
                  ? curlCommand(location.origin, CHAT_PATH, body)
                  : sdkCode(location.origin, body)
              }
            />
          )}
        </div>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {result && (
        <section class="result" aria-label="Reply">
          <pre class="reply" data-testid="reply" aria-busy={running}>
            {result.text}
            {running && <span class="cursor" aria-hidden="true" />}
          </pre>
          {result.tokens && <TokenList tokens={result.tokens} />}
          <Stats result={result} />
          {!running && result.text && (
            <button type="button" class="quiet" onClick={keepReply}>
              Keep the reply and continue
            </button>
          )}
        </section>
      )}
    </section>
  );
}

function Stats({ result }: { result: Result }) {
  const items: [string, string, string | undefined][] = [
    ["finish", "Stop reason", result.finishReason],
    ["prompt-tokens", "Prompt tokens", result.usage?.prompt_tokens.toString()],
    ["completion-tokens", "Completion tokens", result.usage?.completion_tokens.toString()],
    ["total-tokens", "Total tokens", result.usage?.total_tokens.toString()],
    [
      "ttft",
      "Time to first token",
      result.timeToFirstTokenMs === undefined ? undefined : `${Math.round(result.timeToFirstTokenMs)} ms`,
    ],
    ["tps", "Tokens/s", result.tokensPerSecond === undefined ? undefined : result.tokensPerSecond.toFixed(1)],
  ];
  return (
    <dl class="stats" data-testid="stats">
      {items.map(([id, label, value]) => (
        <div key={id}>
          <dt>{label}</dt>
          <dd data-testid={`stat-${id}`}>{value ?? "—"}</dd>
        </div>
      ))}
    </dl>
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

/** The reply token by token, shaded by probability; each token's alternatives in its tooltip. */
function TokenList({ tokens }: { tokens: TokenView[] }) {
  return (
    <section class="tokens" aria-label="Tokens with their log probabilities" data-testid="logprobs">
      {tokens.map((t, i) => {
        const p = Math.exp(t.logprob);
        const shade = p >= 0.9 ? "sure" : p >= 0.5 ? "likely" : p >= 0.1 ? "unsure" : "unlikely";
        const alternatives = t.top.map(
          (a) => `${JSON.stringify(a.token)} ${(Math.exp(a.logprob) * 100).toFixed(1)}%`,
        );
        const title = [
          `${JSON.stringify(t.token)}: logprob ${t.logprob.toFixed(3)} (${(p * 100).toFixed(1)}%)`,
          ...alternatives,
        ].join("\n");
        return (
          <span key={i} class={`token ${shade}`} title={title} data-logprob={t.logprob.toFixed(4)}>
            {t.token}
          </span>
        );
      })}
    </section>
  );
}
