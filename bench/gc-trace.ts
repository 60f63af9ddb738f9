/**
 * Young-generation collections of a child process run with `--trace-gc-nvp`, read from its
 * stdout: how much each scavenge had to keep (the bytes that survived, and those promoted to the
 * old generation) and how long it paused the process. What survives a scavenge is what it copies,
 * so survived bytes per request are what the pauses, and the tail latency at low concurrency,
 * follow.
 */
import type { Readable } from "node:stream";

export interface Scavenge {
  pauseMs: number;
  survivedBytes: number;
  promotedBytes: number;
}

export interface ScavengeTotals {
  scavenges: number;
  /** Mean pause of a scavenge, ms (NaN with none). */
  meanPauseMs: number;
  survivedBytes: number;
  promotedBytes: number;
}

/** One `--trace-gc-nvp` line, when it tells of a scavenge (`gc=s`); undefined for any other line. */
export function parseScavenge(line: string): Scavenge | undefined {
  if (!/\bgc=s\b/.test(line)) return undefined;
  const field = (name: string) => Number(new RegExp(`\\b${name}=([0-9.]+)`).exec(line)?.[1] ?? Number.NaN);
  const scavenge = {
    pauseMs: field("pause"),
    survivedBytes: field("new_space_survived"),
    promotedBytes: field("promoted"),
  };
  return Object.values(scavenge).every(Number.isFinite) ? scavenge : undefined;
}

/** The scavenges a child reported so far; other lines of its stdout pass through to ours. */
export class ScavengeLog {
  private readonly scavenges: Scavenge[] = [];
  private partial = "";

  constructor(stdout: Readable) {
    stdout.setEncoding("utf8");
    stdout.on("data", (text: string) => {
      const lines = (this.partial + text).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) {
        const scavenge = parseScavenge(line);
        if (scavenge) this.scavenges.push(scavenge);
        else if (line.trim() && !line.includes("gc=")) process.stdout.write(`${line}\n`);
      }
    });
  }

  /** A position to total from (since()). */
  mark(): number {
    return this.scavenges.length;
  }

  since(mark: number): ScavengeTotals {
    const taken = this.scavenges.slice(mark);
    const sum = (pick: (s: Scavenge) => number) => taken.reduce((total, s) => total + pick(s), 0);
    return {
      scavenges: taken.length,
      meanPauseMs: taken.length > 0 ? sum((s) => s.pauseMs) / taken.length : Number.NaN,
      survivedBytes: sum((s) => s.survivedBytes),
      promotedBytes: sum((s) => s.promotedBytes),
    };
  }
}
