import { type ChildProcess, spawn } from "node:child_process";

/**
 * `switchboard serve` as a user starts it: the compiled CLI in a child process, its stdout a
 * pipe (so its log is JSON lines), no SWITCHBOARD_* variable of the caller's.
 */
export interface CliServer {
  child: ChildProcess;
  url: string;
  /** Every log line so far, parsed (stdout is JSON lines when it is not a terminal). */
  logs: Record<string, unknown>[];
  stderr: string;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("SWITCHBOARD_")) env[name] = value;
  }
  return { ...env, ...extra };
}

/** Starts `serve` with `args` in `cwd` and resolves once it logs that it is listening. */
export async function startCliServer(main: string, args: string[], cwd: string): Promise<CliServer> {
  const child = spawn(process.execPath, [main, "serve", ...args], {
    cwd,
    env: cliEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  const server = { child, logs, stderr: "" } as CliServer;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  server.stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  };
  child.stderr?.on("data", (chunk: Buffer) => {
    server.stderr += chunk.toString();
  });
  server.url = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === "switchboard is listening") resolve(String(entry.address));
      }
    });
    void exited.then(() =>
      reject(new Error(`serve exited before listening:\n${server.stderr}\n${JSON.stringify(logs)}`)),
    );
  });
  return server;
}
