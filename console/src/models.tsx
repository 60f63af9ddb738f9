import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { type EngineChoice, EngineChoiceView } from "./engine-choice.js";

interface ReadyModel {
  id: string;
  ready: boolean;
  required: boolean;
  slots: number;
  busySlots: number;
  queued: number;
  engine?: { engine: string; state: string; pid?: number; restarts: number; choice?: EngineChoice };
  deployments?: { name: string; provider: string; circuit: string; inFlight: number }[];
}

interface ReadyReport {
  status: string;
  models: ReadyModel[];
}

/** /admin/models, read only for what /ready leaves out (the llama-server binary's path). */
interface AdminModels {
  data?: { id: string; engine?: { choice?: EngineChoice } }[];
}

const REFRESH_MS = 2000;

/** Each model's llama-server binary path, or undefined where the admin API refuses this key. */
async function binaryPaths(): Promise<Map<string, string> | undefined> {
  const res = await api<AdminModels>("GET", "/admin/models", undefined, { allowStatus: [401, 403] });
  if (!res.data) return undefined;
  const paths = new Map<string, string>();
  for (const m of res.data) {
    const path = m.engine?.choice?.binary?.path;
    if (path) paths.set(m.id, path);
  }
  return paths;
}

/** Completion tokens so far per model, from the Prometheus text of /metrics. */
export function completionTokens(metrics: string): Map<string, number> {
  const totals = new Map<string, number>();
  for (const line of metrics.split("\n")) {
    if (!line.startsWith("switchboard_tokens_total{")) continue;
    const labels = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
    if (!/(^|,)kind="completion"/.test(labels)) continue;
    const model = /(?:^|,)model="((?:[^"\\]|\\.)*)"/.exec(labels)?.[1];
    const value = Number(
      line
        .slice(line.lastIndexOf("}") + 1)
        .trim()
        .split(" ")[0],
    );
    if (model !== undefined && Number.isFinite(value)) totals.set(model.replace(/\\(.)/g, "$1"), value);
  }
  return totals;
}

export function Models() {
  const [report, setReport] = useState<ReadyReport | null>(null);
  const [rates, setRates] = useState<Map<string, number>>(new Map());
  const [error, setError] = useState("");
  const [updated, setUpdated] = useState<Date | null>(null);
  const last = useRef<{ at: number; totals: Map<string, number> } | null>(null);
  const [paths, setPaths] = useState<Map<string, string>>(new Map());

  // Binary paths change only with a restart of the server: read once per key typed in.
  useEffect(() => {
    let stopped = false;
    const load = () =>
      binaryPaths()
        .then((found) => !stopped && setPaths(found ?? new Map()))
        .catch(() => !stopped && setPaths(new Map()));
    void load();
    window.addEventListener("switchboard-key", load);
    return () => {
      stopped = true;
      window.removeEventListener("switchboard-key", load);
    };
  }, []);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const refresh = async () => {
      try {
        const [ready, metrics] = await Promise.all([
          api<ReadyReport>("GET", "/ready", undefined, { allowStatus: [503] }),
          api<string>("GET", "/metrics"),
        ]);
        if (stopped) return;
        const now = performance.now();
        const totals = completionTokens(metrics);
        const previous = last.current;
        if (previous) {
          const seconds = (now - previous.at) / 1000;
          const next = new Map<string, number>();
          for (const [model, total] of totals) {
            // A model's counter appears with its first tokens: absent before means zero then.
            next.set(model, Math.max(0, total - (previous.totals.get(model) ?? 0)) / seconds);
          }
          setRates(next);
        }
        last.current = { at: now, totals };
        setReport(ready);
        setError("");
        setUpdated(new Date());
      } catch (e) {
        if (!stopped) setError(e instanceof Error ? e.message : String(e));
      }
      if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
    };
    void refresh();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models and engines</h1>
      <p class="muted" role="status">
        {report ? `Server ${report.status.replace("_", " ")}` : "Loading…"}
        {updated && ` · refreshed ${updated.toLocaleTimeString()} (every ${REFRESH_MS / 1000} s)`}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <div class="table-wrap">
        <table data-testid="models">
          <caption class="muted">
            From /ready and /metrics; tokens/s is completion tokens over the last refresh.
          </caption>
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col">Engine</th>
              <th scope="col">State</th>
              <th scope="col">PID</th>
              <th scope="col">Restarts</th>
              <th scope="col">Slots busy</th>
              <th scope="col">Queue</th>
              <th scope="col">Tokens/s</th>
            </tr>
          </thead>
          <tbody>
            {report?.models.map((m) => (
              <tr key={m.id} data-model={m.id}>
                <th scope="row">{m.id}</th>
                <td data-col="engine">
                  {m.engine?.engine ??
                    (m.deployments
                      ? m.deployments.map((d) => `${d.name} (${d.provider}, ${d.circuit})`).join(", ")
                      : "—")}
                </td>
                <td data-col="state">
                  <span class={m.ready ? "ok" : m.required ? "error" : "muted"}>
                    {m.engine?.state ?? (m.ready ? "ready" : "not ready")}
                  </span>
                </td>
                <td data-col="pid">{m.engine?.pid ?? "—"}</td>
                <td data-col="restarts">{m.engine?.restarts ?? "—"}</td>
                <td data-col="slots">
                  {m.busySlots} / {m.slots}
                </td>
                <td data-col="queue">{m.queued}</td>
                <td data-col="tps">{rates.has(m.id) ? (rates.get(m.id) ?? 0).toFixed(1) : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <section class="panel" aria-labelledby="engines-title">
        <h2 id="engines-title">Why each engine</h2>
        {report?.models.map(
          (m) =>
            m.engine?.choice && (
              <EngineChoiceView
                key={m.id}
                model={m.id}
                engine={m.engine.engine}
                choice={m.engine.choice}
                path={paths.get(m.id)}
              />
            ),
        )}
      </section>
    </section>
  );
}
