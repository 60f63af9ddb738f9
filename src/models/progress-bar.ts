import type { DownloadProgress } from "./download.js";

export interface ProgressReporter {
  update(p: DownloadProgress): void;
  /** Prints the final state; call once when the download has finished. */
  done(): void;
}

const MB = 1024 * 1024;
const REDRAW_INTERVAL_MS = 100;
// Without a known total there is no percentage to step through, so log by volume instead.
const PLAIN_STEP_UNKNOWN_TOTAL = 100 * MB;

/**
 * Progress output for a model download: an in-place bar on a terminal, and
 * occasional plain log lines (every 10%) when output goes to a file or pipe,
 * so logs are not flooded with carriage-return redraws.
 */
export function createProgressReporter(
  stream: NodeJS.WriteStream | NodeJS.WritableStream,
  label: string,
  now: () => number = Date.now,
): ProgressReporter {
  const isTty = "isTTY" in stream && stream.isTTY === true;
  return isTty ? ttyReporter(stream, label, now) : plainReporter(stream, label, now);
}

/** Download rate of this session: bytes kept from an earlier attempt are not counted as speed. */
class RateMeter {
  private startTime: number | undefined;
  private startBytes = 0;

  constructor(private readonly now: () => number) {}

  /** Bytes per second since the first sample, or undefined until time has passed. */
  sample(received: number): number | undefined {
    const t = this.now();
    if (this.startTime === undefined) {
      this.startTime = t;
      this.startBytes = received;
      return undefined;
    }
    const seconds = (t - this.startTime) / 1000;
    return seconds > 0 ? (received - this.startBytes) / seconds : undefined;
  }

  elapsedSeconds(): number {
    return this.startTime === undefined ? 0 : (this.now() - this.startTime) / 1000;
  }
}

function ttyReporter(stream: NodeJS.WritableStream, label: string, now: () => number): ProgressReporter {
  const rate = new RateMeter(now);
  let last: DownloadProgress = { received: 0 };
  let lastDraw = Number.NEGATIVE_INFINITY;
  let lastWidth = 0;
  let lastRate: number | undefined;

  const draw = (): void => {
    const line = formatTtyLine(label, last, lastRate);
    // Pad with spaces so a shorter line fully covers the previous one.
    stream.write(`\r${line.padEnd(lastWidth)}`);
    lastWidth = line.length;
    lastDraw = now();
  };

  return {
    update(p) {
      last = p;
      lastRate = rate.sample(p.received) ?? lastRate;
      if (now() - lastDraw >= REDRAW_INTERVAL_MS) draw();
    },
    done() {
      draw();
      stream.write("\n");
    },
  };
}

function plainReporter(stream: NodeJS.WritableStream, label: string, now: () => number): ProgressReporter {
  const rate = new RateMeter(now);
  let last: DownloadProgress = { received: 0 };
  let lastStep: number | undefined;

  return {
    update(p) {
      last = p;
      const speed = rate.sample(p.received);
      const step = plainStep(p);
      if (lastStep === undefined) {
        // Start counting from where a resumed download already is, without an immediate line.
        lastStep = step;
        return;
      }
      if (step <= lastStep) return;
      lastStep = step;
      stream.write(`${label}: ${formatAmount(p)}${speed === undefined ? "" : `, ${formatRate(speed)}`}\n`);
    },
    done() {
      const seconds = rate.elapsedSeconds();
      stream.write(`${label}: done, ${formatMb(last.received)} MB in ${formatDuration(seconds)}\n`);
    },
  };
}

/** Which 10% step (or which 100 MB block, without a total) the download is in. */
function plainStep(p: DownloadProgress): number {
  if (p.total && p.total > 0) return Math.floor((Math.min(p.received, p.total) / p.total) * 10);
  return Math.floor(p.received / PLAIN_STEP_UNKNOWN_TOTAL);
}

export function formatTtyLine(
  label: string,
  p: DownloadProgress,
  bytesPerSecond: number | undefined,
): string {
  const parts = [label, formatAmount(p)];
  if (bytesPerSecond !== undefined) parts.push(formatRate(bytesPerSecond));
  if (bytesPerSecond !== undefined && bytesPerSecond > 0 && p.total !== undefined) {
    const remaining = Math.max(0, p.total - p.received);
    parts.push(`ETA ${formatDuration(remaining / bytesPerSecond)}`);
  }
  return parts.join("  ");
}

function formatAmount(p: DownloadProgress): string {
  if (p.total === undefined || p.total <= 0) return `${formatMb(p.received)} MB`;
  const percent = ((Math.min(p.received, p.total) / p.total) * 100).toFixed(1);
  return `${percent.padStart(5)}% ${formatMb(p.received)}/${formatMb(p.total)} MB`;
}

function formatMb(bytes: number): string {
  return (bytes / MB).toFixed(1);
}

function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / MB).toFixed(1)} MB/s`;
}

export function formatDuration(totalSeconds: number): string {
  if (!Number.isFinite(totalSeconds)) return "?";
  const seconds = Math.round(totalSeconds);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}
