import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";

/**
 * A record of every engine process Switchboard starts, one file per process in
 * `<data_dir>/run/engines/`. The parent-death watchdog normally takes engines down with
 * Switchboard; these files are the second line: a start after a crash kills what survived.
 */
export interface PidRecord {
  pid: number;
  /** The Switchboard process that started it. */
  owner: number;
  /** The owner's command line, to tell it from an unrelated process that reused its pid. */
  ownerCommand: string;
  /** The engine's command line (executable and arguments), which must still match for it to be killed. */
  command: string;
  model: string;
  startedAt: string;
}

export function pidDir(dataDir: string): string {
  return join(dataDir, "run", "engines");
}

/** Synchronous, so the record exists before anything can observe the process exit. */
export function writePidFile(dir: string, record: PidRecord): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${record.pid}.json`);
  writeFileSync(path, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  return path;
}

export function removePidFile(path: string | undefined): void {
  if (path) rmSync(path, { force: true });
}

/** This process's command line as the sweep compares it. */
export function ownCommandLine(): string {
  return commandLineOf(process.pid) ?? process.argv.join(" ");
}

const swept = new Set<string>();

/**
 * Kills engine processes whose Switchboard is gone (a kill -9, a crash, the OOM killer) and
 * removes their records. A process is only killed when its command line is still the recorded
 * one, so a pid reused by something else is left alone. Runs once per directory
 * per process.
 */
export async function sweepStalePidFiles(dir: string, logger: Logger): Promise<number> {
  if (swept.has(dir)) return 0;
  swept.add(dir);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return 0;
  }
  let killed = 0;
  for (const entry of entries) {
    if (!entry.endsWith(".json")) continue;
    const path = join(dir, entry);
    let record: PidRecord;
    try {
      record = JSON.parse(await readFile(path, "utf8")) as PidRecord;
    } catch {
      await rm(path, { force: true });
      continue;
    }
    if (record.owner !== process.pid && ownerStillRuns(record)) continue;
    const command = commandLineOf(record.pid);
    if (command?.startsWith(record.command)) {
      logger.warn(
        { pid: record.pid, model: record.model, owner: record.owner },
        "killing an engine process left behind by a Switchboard that is gone",
      );
      killGroup(record.pid, "SIGKILL");
      killed++;
    }
    await rm(path, { force: true });
  }
  return killed;
}

function ownerStillRuns(record: PidRecord): boolean {
  const command = commandLineOf(record.owner);
  return command !== undefined && command === record.ownerCommand;
}

/** Kills a process group (engines lead their own), falling back to the process alone. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** A process's command line (arguments joined by spaces), or undefined when it does not exist. */
export function commandLineOf(pid: number): string | undefined {
  const proc = `/proc/${pid}/cmdline`;
  if (existsSync("/proc/self/cmdline")) {
    try {
      const raw = readFileSync(proc, "utf8");
      return raw.replace(/\0+$/, "").split("\0").join(" ");
    } catch {
      return undefined;
    }
  }
  try {
    const out = execFileSync("ps", ["-o", "command=", "-p", String(pid)], { encoding: "utf8" }).trim();
    return out || undefined;
  } catch {
    return undefined;
  }
}
