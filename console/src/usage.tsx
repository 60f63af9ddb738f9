import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { AdminError } from "./admin-help.js";
import { api } from "./api.js";

interface UsageRow {
  project_id?: string;
  key_id?: string;
  model?: string;
  day: string;
  requests: number;
  total_tokens: number;
  cost_usd: number;
}

type Dimension = "project" | "key" | "model";
type Measure = "requests" | "total_tokens" | "cost_usd";

const MEASURES: { measure: Measure; title: string; format: (n: number) => string }[] = [
  { measure: "requests", title: "Requests per day", format: (n) => n.toLocaleString() },
  { measure: "total_tokens", title: "Tokens per day", format: (n) => n.toLocaleString() },
  { measure: "cost_usd", title: "Cost per day (USD)", format: (n) => `$${n.toFixed(4)}` },
];
const COLOURS = ["#0b5fce", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0c8599", "#c2255c", "#5c940d"];

const isoDay = (d: Date) => d.toISOString().slice(0, 10);
const daysAgo = (n: number) => isoDay(new Date(Date.now() - n * 86_400_000));

function groupOf(row: UsageRow, by: Dimension): string {
  return (by === "project" ? row.project_id : by === "key" ? row.key_id : row.model) ?? "—";
}

/** Every day in [from, to], so quiet days show as zero rather than being skipped. */
function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(from); t <= Date.parse(to) && days.length < 400; t += 86_400_000) {
    days.push(isoDay(new Date(t)));
  }
  return days;
}

export function Usage() {
  const [from, setFrom] = useState(daysAgo(13));
  const [to, setTo] = useState(daysAgo(0));
  const [by, setBy] = useState<Dimension>("model");
  const [rows, setRows] = useState<UsageRow[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    try {
      const query = new URLSearchParams({ group_by: `day,${by}`, from, to });
      setRows((await api<{ data: UsageRow[] }>("GET", `/admin/usage?${query}`)).data);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [from, to, by]);
  useEffect(() => {
    void load();
    window.addEventListener("switchboard-key", load);
    return () => window.removeEventListener("switchboard-key", load);
  }, [load]);

  const days = daysBetween(from, to);
  const groups = [...new Set((rows ?? []).map((r) => groupOf(r, by)))].sort();
  return (
    <section aria-labelledby="usage-title">
      <h1 id="usage-title">Usage</h1>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void load();
        }}
      >
        <label class="field">
          <span>From</span>
          <input
            type="date"
            name="from"
            value={from}
            max={to}
            onChange={(e) => setFrom(e.currentTarget.value)}
          />
        </label>
        <label class="field">
          <span>To</span>
          <input type="date" name="to" value={to} min={from} onChange={(e) => setTo(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span>By</span>
          <select name="group" value={by} onChange={(e) => setBy(e.currentTarget.value as Dimension)}>
            <option value="model">model</option>
            <option value="project">project</option>
            <option value="key">key</option>
          </select>
        </label>
        <button type="submit">Refresh</button>
      </form>
      {error !== null && <AdminError error={error} />}
      {rows &&
        MEASURES.map(({ measure, title, format }) => {
          const series = groups.map((g) =>
            days.map((d) =>
              rows.filter((r) => r.day === d && groupOf(r, by) === g).reduce((sum, r) => sum + r[measure], 0),
            ),
          );
          return (
            <section key={measure} class="panel" aria-label={title}>
              <h2>{title}</h2>
              <Chart days={days} groups={groups} series={series} testId={`chart-${measure}`} />
              <div class="table-wrap">
                <table data-testid={`table-${measure}`}>
                  <thead>
                    <tr>
                      <th scope="col">Day</th>
                      {groups.map((g) => (
                        <th key={g} scope="col">
                          {g}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {days.map((d, i) =>
                      series.some((s) => (s[i] ?? 0) > 0) ? (
                        <tr key={d}>
                          <th scope="row">{d}</th>
                          {series.map((s, j) => (
                            <td key={groups[j]}>{format(s[i] ?? 0)}</td>
                          ))}
                        </tr>
                      ) : null,
                    )}
                  </tbody>
                </table>
              </div>
            </section>
          );
        })}
    </section>
  );
}

function Chart(props: { days: string[]; groups: string[]; series: number[][]; testId: string }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = holder.current;
    if (!el) return;
    const xs = props.days.map((d) => Date.parse(d) / 1000);
    const width = Math.max(280, el.clientWidth);
    const plot = new uPlot(
      {
        width,
        height: 220,
        series: [
          {},
          ...props.groups.map((g, i) => ({ label: g, stroke: COLOURS[i % COLOURS.length], width: 2 })),
        ],
        axes: [{ stroke: "currentColor" }, { stroke: "currentColor" }],
        scales: { x: { time: true } },
      },
      [xs, ...props.series],
      el,
    );
    const resize = () => plot.setSize({ width: Math.max(280, el.clientWidth), height: 220 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.destroy();
    };
  }, [props.days, props.groups, props.series]);
  return (
    <div
      class="chart"
      ref={holder}
      data-testid={props.testId}
      role="img"
      aria-label="Chart; the table below holds the same numbers"
    />
  );
}
