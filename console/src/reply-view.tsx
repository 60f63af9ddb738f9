import { useState } from "preact/hooks";
import type { StreamedCall, StreamedReply, TokenView } from "./chat-stream.js";

/**
 * The reply as it streams: reasoning, text, a refusal, tool calls (name, then arguments as they
 * arrive), the tokens with their log probabilities, and the numbers under it.
 */
export function ReplyView(props: {
  reply: StreamedReply;
  running: boolean;
  /** Keeps a text reply as an assistant message and adds an empty user message. */
  onKeep: () => void;
  /** Keeps the reply with its calls, adds one tool message per call with the result typed, sends. */
  onToolResults: (results: string[]) => void;
}) {
  const { reply, running } = props;
  const hasCalls = reply.calls.length > 0;
  return (
    <section class="result" aria-label="Reply">
      {reply.reasoning && (
        <details class="reasoning" open>
          <summary>Reasoning</summary>
          <pre data-testid="reasoning">{reply.reasoning}</pre>
        </details>
      )}
      {(reply.text || !hasCalls) && (
        <pre class="reply" data-testid="reply" aria-busy={running}>
          {reply.text}
          {running && !hasCalls && <span class="cursor" aria-hidden="true" />}
        </pre>
      )}
      {reply.refusal && (
        <p class="error" data-testid="refusal">
          Refused: {reply.refusal}
        </p>
      )}
      {hasCalls && <ToolCalls calls={reply.calls} running={running} onResults={props.onToolResults} />}
      {reply.tokens && <TokenList tokens={reply.tokens} />}
      <Stats reply={reply} />
      {!running && reply.text && !hasCalls && (
        <button type="button" class="quiet" onClick={props.onKeep}>
          Keep the reply and continue
        </button>
      )}
    </section>
  );
}

function ToolCalls(props: {
  calls: StreamedCall[];
  running: boolean;
  onResults: (results: string[]) => void;
}) {
  const [results, setResults] = useState<string[]>([]);
  const [tried, setTried] = useState(false);
  const missing = props.calls.map((_, i) => (results[i] ?? "").trim() === "");
  const send = () => {
    setTried(true);
    const first = missing.indexOf(true);
    if (first >= 0) {
      document.getElementById(`tool-result-${first}`)?.focus();
      return;
    }
    props.onResults(props.calls.map((_, i) => results[i] ?? ""));
  };
  return (
    <section class="calls" aria-label="Tool calls" aria-busy={props.running}>
      <h2>Tool calls</h2>
      {props.calls.map((call, i) => (
        <article class="call" key={call.index} data-testid="tool-call">
          <h3>
            <code data-testid="tool-call-name">{call.name || "…"}</code> <span class="muted">{call.id}</span>
          </h3>
          <pre class="arguments" data-testid="tool-call-arguments">
            {call.arguments}
          </pre>
          {!props.running && (
            <label class="field">
              <span>Result of {call.name}</span>
              <textarea
                id={`tool-result-${i}`}
                rows={2}
                spellcheck={false}
                value={results[i] ?? ""}
                aria-invalid={tried && missing[i]}
                aria-describedby={tried && missing[i] ? `tool-result-${i}-error` : undefined}
                onInput={(e) => {
                  const next = [...results];
                  next[i] = e.currentTarget.value;
                  setResults(next);
                }}
              />
              {tried && missing[i] && (
                <span class="field-error" id={`tool-result-${i}-error`}>
                  Enter what the tool returned.
                </span>
              )}
            </label>
          )}
        </article>
      ))}
      {!props.running && (
        <button type="button" onClick={send}>
          Send the results and continue
        </button>
      )}
    </section>
  );
}

function Stats({ reply }: { reply: StreamedReply }) {
  const items: [string, string, string | undefined][] = [
    ["finish", "Stop reason", reply.finishReason],
    ["prompt-tokens", "Prompt tokens", reply.usage?.prompt_tokens.toString()],
    ["completion-tokens", "Completion tokens", reply.usage?.completion_tokens.toString()],
    ["total-tokens", "Total tokens", reply.usage?.total_tokens.toString()],
    [
      "ttft",
      "Time to first token",
      reply.timeToFirstTokenMs === undefined ? undefined : `${Math.round(reply.timeToFirstTokenMs)} ms`,
    ],
    ["tps", "Tokens/s", reply.tokensPerSecond === undefined ? undefined : reply.tokensPerSecond.toFixed(1)],
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
