import { cpuNanos, foreignPercent, jiffiesOf, snapshot } from "./cpu-monitor.js";

/**
 * The engine-agnostic core of the benchmark: a target is anything that can serve chat requests
 * (node-llama-cpp driven directly, Switchboard over HTTP, later llama-server, a runner process...).
 * The harness owns prompts, timing of whole cells and statistics, so every target is measured the
 * same way and adds rows to the same table.
 */

export interface BenchMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** Engine settings a target is opened with; one open session per (streams, threads). */
export interface EngineSettings {
  modelPath: string;
  /** A short label of the model (preset and weight type), for model ids and output. */
  modelLabel: string;
  /** Concurrent streams; the context gets this many parallel sequences (slots). */
  streams: number;
  threads: number;
  /** Tokens per sequence; undefined = what the server does by default. */
  contextSize?: number;
}

export interface BenchRequest {
  messages: BenchMessage[];
  maxTokens: number;
  temperature: number;
  seed: number;
}

export interface RequestResult {
  /** From the moment the request is issued until the first generated text reaches the caller. */
  ttftMs: number;
  /** Tokens the engine actually generated (from usage where the target reports it). */
  completionTokens: number;
  promptTokens: number;
  /** Prompt tokens served from a cache, where the target reports it. */
  cachedTokens?: number;
  /** The server's own view of TTFT (whole ms), where it reports one: the rest is client and transport. */
  serverTtftMs?: number;
  /** Gaps between successive pieces of generated text as the client received them, in ms. */
  interTokenMs: number[];
}

/** Collects the arrival gaps of a stream's text pieces (inter-token latency as the client sees it). */
export class ArrivalClock {
  readonly gaps: number[] = [];
  private last: number | undefined;

  tick(): void {
    const now = performance.now();
    if (this.last !== undefined) this.gaps.push(now - this.last);
    this.last = now;
  }
}

/** The `p`-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

export interface ResourceUsage {
  /** Label, e.g. "server child process RSS", and a human-readable value. */
  [label: string]: string;
}

export interface BenchSession {
  /** Runs the requests concurrently (at most `streams` of them) and resolves when all are done. */
  run(requests: BenchRequest[]): Promise<RequestResult[]>;
  /** Memory of the processes involved, read after the measured runs. */
  resources(): ResourceUsage;
  /** Processes besides the bench process that do this session's work (a child server). */
  pids(): number[];
  /** The Switchboard server process, when it runs apart from its engine: its CPU per token is reported. */
  serverPid?(): number | undefined;
  close(): Promise<void>;
}

export interface BenchTarget {
  /** Row label in the table. */
  readonly name: string;
  /** One line on what exactly this path measures, printed under the table. */
  readonly description: string;
  /** The baseline other rows are compared against. */
  readonly baseline?: boolean;
  /** Whether the multi-turn prompt-cache measurement is meaningful for this target. */
  readonly promptCache: boolean;
  open(settings: EngineSettings): Promise<BenchSession>;
}

// ---------------------------------------------------------------------------------------------------------
// Statistics

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function mean(values: readonly number[]): number {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN;
}

/** One repetition of a cell: `streams` concurrent requests timed from the first issue to the last end. */
export interface RepResult {
  wallMs: number;
  requests: RequestResult[];
  /** Share of the whole machine (100 = all cores) other processes used meanwhile. */
  foreignCpuPercent: number;
  /** Share of the machine the bench's other (idle) sessions' processes used meanwhile. */
  idleSessionsCpuPercent: number;
  /** CPU time the Switchboard server process itself used (not its engine), where it runs apart. */
  serverCpuMs?: number;
}

/** Microseconds of server CPU per generated token in a repetition (NaN where not measured). */
export function serverMicrosPerToken(rep: RepResult): number {
  const tokens = rep.requests.reduce((sum, r) => sum + r.completionTokens, 0);
  return rep.serverCpuMs === undefined ? Number.NaN : (rep.serverCpuMs * 1000) / tokens;
}

export function tokensPerSecond(rep: RepResult): number {
  const tokens = rep.requests.reduce((sum, r) => sum + r.completionTokens, 0);
  return tokens / (rep.wallMs / 1000);
}

/** Times one repetition; `ownPids` are the bench's other processes (not counted as neighbours). */
export async function timeRep(
  session: BenchSession,
  requests: BenchRequest[],
  ownPids: readonly number[],
): Promise<RepResult> {
  const others = ownPids.filter((pid) => !session.pids().includes(pid));
  const serverPid = session.serverPid?.();
  const serverBefore = serverPid === undefined ? undefined : cpuNanos(serverPid);
  const before = snapshot(ownPids);
  const othersBefore = jiffiesOf(others);
  const started = performance.now();
  const results = await session.run(requests);
  const wallMs = performance.now() - started;
  const after = snapshot(ownPids);
  const serverAfter = serverPid === undefined ? undefined : cpuNanos(serverPid);
  const total = after && before ? after.total - before.total : Number.NaN;
  return {
    wallMs,
    requests: results,
    foreignCpuPercent: foreignPercent(before, after),
    idleSessionsCpuPercent: (100 * (jiffiesOf(others) - othersBefore)) / total,
    ...(serverBefore !== undefined &&
      serverAfter !== undefined && { serverCpuMs: (serverAfter - serverBefore) / 1e6 }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Output helpers

const benchStart = performance.now();

/** Progress goes to stderr so stdout holds only the results. */
export function progress(message: string): void {
  const s = ((performance.now() - benchStart) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${s}s] ${message}\n`);
}

export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  const rule = `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

export function fmt(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}

export function signed(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return "-";
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}
