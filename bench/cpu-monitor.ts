import { readdirSync, readFileSync } from "node:fs";
/**
 * Development machines are shared (other people's test runs), and on 2 cores one busy neighbour
 * halves a measurement. This reads /proc (Linux) to tell how much of the machine processes other
 * than the bench's own used during a window, so every number can be printed with its contention
 * and repetitions can wait for a quiet moment. Elsewhere it reports nothing.
 */
export interface CpuSnapshot {
  /** Busy and total jiffies of the whole machine (all cores). */
  busy: number;
  total: number;
  /** utime + stime jiffies of the watched processes. */
  own: number;
}

export function snapshot(pids: readonly number[]): CpuSnapshot | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] as string;
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    let own = 0;
    for (const pid of [process.pid, ...pids]) own += processJiffies(pid);
    return { busy: total - idle, total, own };
  } catch {
    return undefined;
  }
}

/** Percent of the whole machine (100 = every core) used by other processes between two snapshots. */
export function foreignPercent(a: CpuSnapshot | undefined, b: CpuSnapshot | undefined): number {
  if (!a || !b || b.total <= a.total) return Number.NaN;
  const foreign = b.busy - a.busy - (b.own - a.own);
  return Math.max(0, (100 * foreign) / (b.total - a.total));
}

/** utime + stime jiffies of these processes together. */
export function jiffiesOf(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + processJiffies(pid), 0);
}

function processJiffies(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return 0;
  }
}

/**
 * Keeps measurements away from busy neighbours within a time budget for the whole run: waits for a
 * quiet machine before a measurement, and says whether a contended one is worth repeating.
 */
export class QuietGuard {
  private spentMs = 0;

  constructor(
    private readonly opts: {
      /** Other processes may use at most this percent of the machine (100 = all cores). */
      belowPercent: number;
      /** Longest wait before one measurement. */
      maxWaitMs: number;
      /** All waiting and repeated measurements of the run together. */
      budgetMs: number;
      log: (message: string) => void;
    },
  ) {}

  get enabled(): boolean {
    return this.opts.budgetMs > 0 && this.opts.maxWaitMs > 0 && snapshot([]) !== undefined;
  }

  /** Waits (bounded) until other processes use less than the threshold over half a second. */
  async waitForQuiet(ownPids: readonly number[]): Promise<void> {
    if (!this.enabled) return;
    const started = performance.now();
    const limit = Math.min(this.opts.maxWaitMs, this.opts.budgetMs - this.spentMs);
    let warned = false;
    for (;;) {
      const a = snapshot(ownPids);
      await new Promise((r) => setTimeout(r, 500));
      const busy = foreignPercent(a, snapshot(ownPids));
      const waited = performance.now() - started;
      if (!(busy >= this.opts.belowPercent) || waited >= limit) {
        if (busy >= this.opts.belowPercent)
          this.opts.log(`other processes use ${busy.toFixed(0)}%; measuring anyway`);
        this.spentMs += waited;
        return;
      }
      if (!warned) {
        this.opts.log(
          `other processes use ${busy.toFixed(0)}% of the machine; waiting up to ${(limit / 1000).toFixed(0)} s`,
        );
        warned = true;
      }
    }
  }

  /** Whether a measurement taken under this much foreign load should be repeated (and charges its time). */
  shouldRepeat(foreignCpuPercent: number, measurementMs: number): boolean {
    if (!this.enabled || !(foreignCpuPercent > 2 * this.opts.belowPercent)) return false;
    if (this.spentMs + measurementMs > this.opts.budgetMs) return false;
    this.spentMs += measurementMs;
    return true;
  }

  get spentSeconds(): number {
    return this.spentMs / 1000;
  }
}

/**
 * CPU time all threads of a process have run, in nanoseconds (/proc/PID/task/TID/schedstat: far
 * finer than the 10 ms jiffies of /proc/PID/stat); undefined where there is no /proc.
 */
export function cpuNanos(pid: number): number | undefined {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const fields = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ");
      total += Number(fields[0]);
    }
    return total;
  } catch {
    return undefined;
  }
}
