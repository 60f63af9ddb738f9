import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";

interface ReadyModel {
  id: string;
  ready: boolean;
  required: boolean;
  slots: number;
  busySlots: number;
  queued: number;
  engine?: { engine: string; state: string; pid?: number; restarts: number };
  deployments?: { name: string; provider: string; circuit: string; inFlight: number }[];
}

interface ReadyReport {
  status: string;
  models: ReadyModel[];
}

const REFRESH_MS = 2000;

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
                  <span class={m.ready ? "ok" : "error"}>
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
    </section>
  );
}
