import { existsSync, readFileSync } from "node:fs";

/** Whether a process exists and is not a zombie (exited, not yet reaped). */
export function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const status = `/proc/${pid}/status`;
  return !existsSync(status) || !/State:\s+Z/.test(readFileSync(status, "utf8"));
}

/** Whether any process of a process group is left (engines lead their own group, watchdog included). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
