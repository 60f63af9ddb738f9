import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  commandLineOf,
  pidDir,
  sweepStalePidFiles,
  writePidFile,
} from "../../src/backends/local/engines/pid-files.js";
import {
  type EngineProcess,
  ProcessSupervisor,
  type SupervisorOptions,
} from "../../src/backends/local/engines/process-supervisor.js";
import { WATCHDOG_SCRIPT } from "../../src/backends/local/engines/spawn-with-watchdog.js";
import { ServiceError } from "../../src/core/errors.js";
import { createLogger } from "../../src/observability/logger.js";
import { alive, groupAlive } from "../helpers/process-state.js";
import { waitFor } from "../helpers/wait-for.js";

const FAKE_ENGINE = fileURLToPath(new URL("./fixtures/fake-engine.mjs", import.meta.url));

const supervisors: ProcessSupervisor[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.close()));
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function fakeSupervisor(
  env: Record<string, string> = {},
  options: Partial<SupervisorOptions> = {},
): { supervisor: ProcessSupervisor; logs: string[]; dataDir: string } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const dataDir = mkdtempSync(join(tmpdir(), "sb-supervisor-"));
  const supervisor = new ProcessSupervisor(
    {
      kind: "fake",
      model: "m",
      command: process.execPath,
      args: ({ port }) => [FAKE_ENGINE, "--port", String(port)],
      env: ({ apiKey }) => ({ ...process.env, ...env, FAKE_API_KEY: apiKey }),
      waitReady: async (p, signal) => {
        for (;;) {
          signal.throwIfAborted();
          try {
            const response = await fetch(`${p.baseUrl}/health`, { signal });
            if (response.status === 200) return;
          } catch (err) {
            if (signal.aborted) throw err;
          }
          await sleep(20, undefined, { signal });
        }
      },
    },
    {
      logger: createLogger("debug", sink),
      dataDir,
      backoffMs: 100,
      maxBackoffMs: 400,
      stopGraceMs: 1000,
      startTimeoutMs: 10_000,
      ...options,
    },
  );
  supervisors.push(supervisor);
  return { supervisor, logs, dataDir };
}

async function get(p: EngineProcess, path: string, signal?: AbortSignal): Promise<string> {
  const response = await fetch(`${p.baseUrl}${path}`, { signal: signal ?? p.signal });
  return response.text();
}

describe("ProcessSupervisor", () => {
  it("starts the process on a loopback port and resolves once /health answers 200", async () => {
    const { supervisor, logs } = fakeSupervisor({ FAKE_READY_DELAY_MS: "300" });
    expect(supervisor.status().state).toBe("stopped");
    const started = performance.now();
    const p = await supervisor.start();
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(p.baseUrl).toBe(`http://127.0.0.1:${p.port}`);
    expect(supervisor.status()).toMatchObject({ state: "ready", pid: p.pid, restarts: 0, starts: 1 });
    // The process is the child itself (the watchdog shell exec'd it), so its pid is the engine's.
    expect(await get(p, "/pid")).toBe(String(p.pid));
    expect(p.apiKey.length).toBeGreaterThanOrEqual(24);
    // Its output goes to our log with the engine name.
    await waitFor("the engine's output in the log", () =>
      logs.some((l) => l.includes("fake-engine listening")),
    );
    expect(logs.find((l) => l.includes("fake-engine listening"))).toContain('"engine":"fake"');
  });

  it("passes the secret through the environment, never the command line", async () => {
    const { supervisor } = fakeSupervisor();
    const p = await supervisor.start();
    expect(commandLineOf(p.pid)).not.toContain(p.apiKey);
  });

  it("restarts a process that dies, with growing backoff, and counts restarts", async () => {
    const { supervisor, logs } = fakeSupervisor();
    const first = await supervisor.start();
    await get(first, "/crash").catch(() => {});
    await waitFor("the lease signal to abort", () => first.signal.aborted);
    expect(["restarting", "starting", "ready"]).toContain(supervisor.status().state);
    await waitFor(
      "a new process",
      () => supervisor.status().state === "ready" && supervisor.status().pid !== first.pid,
    );
    const second = await supervisor.start();
    expect(second.generation).toBe(first.generation + 1);
    expect(second.pid).not.toBe(first.pid);
    expect(supervisor.status()).toMatchObject({ restarts: 1, lastExit: { code: 3 } });
    expect(logs.some((l) => l.includes("engine process died; restarting it"))).toBe(true);

    // A second crash soon after is a crash loop: the next delay is longer.
    const crashedAt = Date.now();
    await get(second, "/crash").catch(() => {});
    await waitFor(
      "a third process",
      () => supervisor.status().state === "ready" && supervisor.status().pid !== second.pid,
    );
    expect(Date.now() - crashedAt).toBeGreaterThanOrEqual(180);
    expect(supervisor.status().restarts).toBe(2);
  });

  it("aborts a lease's signal the moment its process dies, so an in-flight request fails instead of hanging", async () => {
    const { supervisor } = fakeSupervisor();
    const lease = await supervisor.acquire(new AbortController().signal);
    const p = lease.process;
    const response = await fetch(`${p.baseUrl}/hang`, { signal: p.signal });
    const reading = response.text().then(
      () => "completed",
      (err: unknown) => err,
    );
    await get(p, "/crash").catch(() => {});
    expect(await reading).toBeInstanceOf(Error);
    await waitFor("the lease signal to abort", () => p.signal.aborted, 2_000);
    expect(String((p.signal.reason as Error).message)).toMatch(/exited/);
    lease.release();
  });

  it("refuses work with a 503 ServiceError while a crash-looping process waits for its next start", async () => {
    const { supervisor, logs } = fakeSupervisor(
      { FAKE_EXIT_AT_START: "7" },
      { backoffMs: 10_000, maxBackoffMs: 10_000 },
    );
    const err = await supervisor.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceError);
    expect((err as ServiceError).status).toBe(503);
    expect(((err as ServiceError).cause as Error).message).toMatch(/exit code 7/);
    expect(((err as ServiceError).cause as Error).message).toMatch(/refusing to start/);
    expect(supervisor.status().state).toBe("failed");
    // The retry is 10 s away: a request is refused at once, with retry-after.
    const started = performance.now();
    const again = await supervisor.acquire(new AbortController().signal).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(100);
    expect((again as ServiceError).status).toBe(503);
    expect((again as ServiceError).hints["retry-after"]).toMatch(/^\d+$/);
    expect(logs.some((l) => l.includes("engine process failed to start"))).toBe(true);
  });

  it("times out a start that never becomes healthy and kills that process", async () => {
    const { supervisor } = fakeSupervisor({ FAKE_READY_DELAY_MS: "60000" }, { startTimeoutMs: 400 });
    const err = await supervisor.start().catch((e: unknown) => e);
    expect((err as ServiceError).status).toBe(503);
    expect(((err as ServiceError).cause as Error).message).toMatch(/not ready after 400 ms/);
    await waitFor("the process to be killed", () => supervisor.status().pid === undefined);
  });

  it("stops an idle process and starts it again on demand", async () => {
    const { supervisor, logs } = fakeSupervisor({}, { idleTtlMs: 300 });
    const lease = await supervisor.acquire(new AbortController().signal);
    const first = lease.process;
    await sleep(500);
    // A held lease keeps it running.
    expect(supervisor.status().state).toBe("ready");
    lease.release();
    await waitFor("the idle process to stop", () => supervisor.status().state === "stopped");
    await waitFor("the idle process to exit", () => !alive(first.pid));
    expect(logs.some((l) => l.includes("stopping idle engine process"))).toBe(true);
    const second = await supervisor.start();
    expect(second.pid).not.toBe(first.pid);
    expect(supervisor.status()).toMatchObject({ state: "ready", restarts: 0, starts: 2 });
  });

  it("close() stops the process, its watchdog and its pid file, and later requests get 503", async () => {
    const { supervisor, dataDir } = fakeSupervisor();
    const p = await supervisor.start();
    expect(readdirSync(pidDir(dataDir))).toEqual([`${p.pid}.json`]);
    await supervisor.close();
    expect(alive(p.pid)).toBe(false);
    // The watchdog got SIGKILL with the group; it only has to be reaped.
    await waitFor("the watchdog to be reaped", () => !groupAlive(p.pid), 5_000);
    expect(readdirSync(pidDir(dataDir))).toEqual([]);
    expect(supervisor.status().state).toBe("closed");
    const err = await supervisor.start().catch((e: unknown) => e);
    expect((err as ServiceError).status).toBe(503);
  });

  it("close() kills a process that ignores SIGTERM after the grace period", async () => {
    const { supervisor } = fakeSupervisor({ FAKE_IGNORE_SIGTERM: "1" }, { stopGraceMs: 300 });
    const p = await supervisor.start();
    const started = performance.now();
    await supervisor.close();
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(alive(p.pid)).toBe(false);
  });

  it("close() during a start waits for that start and leaves nothing running", async () => {
    const { supervisor, dataDir } = fakeSupervisor({ FAKE_READY_DELAY_MS: "300" });
    const starting = supervisor.start().catch((e: unknown) => e);
    await sleep(100);
    await supervisor.close();
    expect((await starting) as ServiceError).toBeInstanceOf(ServiceError);
    expect(supervisor.status().pid).toBeUndefined();
    expect(readdirSync(pidDir(dataDir))).toEqual([]);
  });
});

describe("engine processes never outlive Switchboard", () => {
  it("the watchdog kills the engine when its parent is killed with SIGKILL", async () => {
    // A stand-in parent (the Switchboard that gets kill -9'd) starts an engine the way the
    // supervisor does, prints the engine's pid and waits.
    const parentScript = `
      const { spawn } = require("node:child_process");
      const child = spawn("/bin/sh", ["-c", process.env.WATCHDOG, "engine", process.execPath, process.env.FAKE, "--port", "0"],
        { stdio: ["pipe", "ignore", "ignore"], detached: true, env: { ...process.env, SWITCHBOARD_WATCHDOG_GRACE: "1" } });
      process.stdout.write(child.pid + "\\n");
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ["-e", parentScript], {
      env: { ...process.env, WATCHDOG: WATCHDOG_SCRIPT, FAKE: FAKE_ENGINE },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(parent);
    const enginePid = await new Promise<number>((resolve) => {
      parent.stdout?.once("data", (chunk: Buffer) => resolve(Number(String(chunk).trim())));
    });
    await waitFor("the engine to run", () => (commandLineOf(enginePid) ?? "").includes("fake-engine.mjs"));
    parent.kill("SIGKILL");
    await waitFor("the watchdog to kill the engine", () => !alive(enginePid), 5_000);
    await waitFor("the engine's group to be gone", () => !groupAlive(enginePid), 5_000);
  });

  it("a start sweeps engines whose Switchboard is gone, and only processes that still match their record", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sb-sweep-"));
    const dir = pidDir(dataDir);
    // An orphan: an engine-like process still running, recorded by an owner that has exited.
    const orphan = spawn(process.execPath, [FAKE_ENGINE, "--port", "0"], { detached: true, stdio: "ignore" });
    children.push(orphan);
    const innocent = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    children.push(innocent);
    const goneOwner = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await new Promise((resolve) => goneOwner.once("exit", resolve));
    const record = {
      owner: goneOwner.pid as number,
      ownerCommand: "node switchboard serve",
      model: "m",
      startedAt: new Date().toISOString(),
    };
    await waitFor("the orphan to run", () => commandLineOf(orphan.pid as number) !== undefined);
    writePidFile(dir, {
      ...record,
      pid: orphan.pid as number,
      command: commandLineOf(orphan.pid as number) ?? "",
    });
    // A record whose pid now belongs to something else: that process must survive.
    writePidFile(dir, { ...record, pid: innocent.pid as number, command: "/opt/llama-server --model x" });
    const silent = createLogger("silent");
    expect(await sweepStalePidFiles(dir, silent)).toBe(1);
    await waitFor("the orphan to be killed", () => !alive(orphan.pid));
    expect(alive(innocent.pid)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("the sweep leaves engines of a Switchboard that still runs", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sb-sweep-live-"));
    const dir = pidDir(dataDir);
    const engine = spawn(process.execPath, [FAKE_ENGINE, "--port", "0"], { stdio: "ignore" });
    children.push(engine);
    const owner = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
    children.push(owner);
    await waitFor("the owner to run", () => commandLineOf(owner.pid as number) !== undefined);
    await waitFor("the engine to run", () => commandLineOf(engine.pid as number) !== undefined);
    writePidFile(dir, {
      pid: engine.pid as number,
      owner: owner.pid as number,
      ownerCommand: commandLineOf(owner.pid as number) ?? "",
      command: commandLineOf(engine.pid as number) ?? "",
      model: "m",
      startedAt: new Date().toISOString(),
    });
    expect(await sweepStalePidFiles(dir, createLogger("silent"))).toBe(0);
    expect(alive(engine.pid)).toBe(true);
    expect(readdirSync(dir)).toHaveLength(1);
  });
});
