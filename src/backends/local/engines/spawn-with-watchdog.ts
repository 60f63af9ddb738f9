import { type ChildProcess, spawn } from "node:child_process";

/**
 * Starts `command` so that it cannot outlive this process, whatever ends it (kill -9 included):
 * a POSIX shell keeps the read end of a pipe from us open in a tiny watchdog and then `exec`s
 * the command, so the command keeps the child's pid. When this process dies the kernel closes
 * the pipe's write end; the watchdog's `read` sees end-of-file and kills the command (TERM, then
 * KILL after `graceSeconds`). The command gets its own process group, so stopping it also takes
 * the watchdog down. Linux and macOS alike; no native code.
 */
export const WATCHDOG_SCRIPT = [
  "exec 9<&0",
  `( while read -r _ <&9; do :; done; kill -TERM $$ 2>/dev/null; sleep "$SWITCHBOARD_WATCHDOG_GRACE"; kill -KILL $$ 2>/dev/null ) </dev/null >/dev/null 2>&1 &`,
  'exec "$@" 9<&- </dev/null',
].join("\n");

export interface WatchedSpawnOptions {
  env: NodeJS.ProcessEnv;
  /** An IPC channel on fd 3 (for a Node child). */
  ipc?: boolean;
  graceSeconds?: number;
}

export function spawnWithWatchdog(
  command: string,
  args: string[],
  options: WatchedSpawnOptions,
): ChildProcess {
  const stdio: ("pipe" | "ipc")[] = ["pipe", "pipe", "pipe"];
  if (options.ipc) stdio.push("ipc");
  if (process.platform === "win32") {
    // No POSIX shell: the child lives in our job and the pid file sweep is the only safety net.
    return spawn(command, args, { env: options.env, stdio, windowsHide: true });
  }
  return spawn("/bin/sh", ["-c", WATCHDOG_SCRIPT, "switchboard-engine", command, ...args], {
    env: { ...options.env, SWITCHBOARD_WATCHDOG_GRACE: String(options.graceSeconds ?? 3) },
    stdio,
    // Its own process group: signals to the group reach the engine and its watchdog.
    detached: true,
  });
}
