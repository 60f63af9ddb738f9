import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { RunnerEngine } from "../../src/backends/local/engines/runner/runner-engine.js";
import { runnerEnv } from "../../src/backends/local/engines/runner/runner-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";

const MAIN_JS = fileURLToPath(new URL("../../build/src/main.js", import.meta.url));
const BUILT_RUNNER = fileURLToPath(
  new URL("../../build/src/backends/local/engines/runner/runner-child.js", import.meta.url),
);
const hello = [{ role: "user" as const, content: "Hello there" }];

const servers: TestServer[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function engineOf(t: TestServer): RunnerEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as RunnerEngine;
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const status = `/proc/${pid}/status`;
  return !existsSync(status) || !/State:\s+Z/.test(readFileSync(status, "utf8"));
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await sleep(20);
  }
}

async function start(model: Record<string, unknown> = {}) {
  const t = await startTestServer({ model: { engine: "runner", ...model } });
  servers.push(t);
  return t;
}

/**
 * Runs `pid` in bursts of about a millisecond until `until()` is true, then leaves it stopped:
 * the tiny model is fast (and the client shares this process with the server), so this is how a
 * test gets a response that has begun but not ended.
 */
async function stepUntil(pid: number, until: () => boolean): Promise<void> {
  process.kill(pid, "SIGSTOP");
  while (!until()) {
    process.kill(pid, "SIGCONT");
    // A busy wait: a timer could fire much later on a loaded machine.
    const end = performance.now() + 1;
    while (performance.now() < end) {}
    process.kill(pid, "SIGSTOP");
    await sleep(30);
  }
}

describe("a runner that cannot load its model", () => {
  it("answers with a JSON 503 naming the model, logs the runner's own words, and the server stays up", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sb-runner-bad-"));
    const bad = join(dir, "bad.gguf");
    // A GGUF v3 header without any metadata: no architecture, no tensors.
    writeFileSync(bad, Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0]), Buffer.alloc(16)]));
    const t = await startTestServer({ model: { engine: "runner", source: bad, load: "on_demand" } });
    servers.push(t);
    const err = await t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain(TINY_MODEL);
    expect(t.logs.join("")).toContain("error: could not load the model");
    expect((await fetch(`${t.url}/health`)).status).toBe(200);
  });
});

describe("the runner process under supervision", () => {
  it("ends a stream cut by a runner crash with an SSE error event, restarts the runner and serves again", async () => {
    const t = await start();
    const engine = engineOf(t);
    const pid = engine.processStatus().pid as number;
    let begun = false;
    const creating = t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 480, stream: true })
      .finally(() => {
        begun = true;
      });
    await stepUntil(pid, () => begun);
    process.kill(pid, "SIGKILL");
    const stream = await creating;
    let chunks = 0;
    const outcome = await (async () => {
      for await (const _ of stream) chunks++;
      return "ended";
    })().catch((e: unknown) => e);
    expect(chunks).toBeGreaterThan(0);
    // The SDK surfaces the SSE error event as an APIError; the stream never hangs.
    expect(outcome).toBeInstanceOf(OpenAI.APIError);
    // The frame keeps the engine's own message: the model is restarting and a retry will work.
    expect(String((outcome as Error).message)).toMatch(
      /stopped unexpectedly.*Retry the request|failed to process/,
    );
    expect(engine.stats().busySlots).toBe(0);
    await waitFor(() => engine.processStatus().state === "ready" && engine.processStatus().pid !== pid);
    expect(engine.processStatus().restarts).toBe(1);
    const next = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 3,
    });
    expect(next.usage?.completion_tokens).toBe(3);
    expect(t.logs.join("")).toContain("engine process died; restarting it");
  });

  it("answers a stream whose runner dies before the first token with a JSON 503", async () => {
    const t = await start();
    const engine = engineOf(t);
    const pid = engine.processStatus().pid as number;
    process.kill(pid, "SIGSTOP");
    const pending = t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 20, stream: true })
      .catch((e: unknown) => e);
    await waitFor(() => engine.stats().busySlots > 0);
    process.kill(pid, "SIGKILL");
    const err = await pending;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain(TINY_MODEL);
    expect(engine.stats().busySlots).toBe(0);
  });

  it("answers a non-streamed request cut by a crash with a JSON 503", async () => {
    const t = await start();
    const engine = engineOf(t);
    const pid = engine.processStatus().pid as number;
    let generating = false;
    const pending = t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 450 })
      .catch((e: unknown) => e);
    await stepUntil(pid, () => {
      generating ||= engine.stats().busySlots > 0;
      return generating;
    });
    process.kill(pid, "SIGKILL");
    const err = await pending;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  });

  it("stops the runner when idle and starts it again on the next request", async () => {
    const t = await start({ idle_ttl_ms: 1000 });
    const engine = engineOf(t);
    await t.client.chat.completions.create({ model: TINY_MODEL, messages: hello, max_tokens: 2 });
    const pid = engine.processStatus().pid;
    await waitFor(() => engine.processStatus().state === "stopped", 5_000);
    await waitFor(() => !alive(pid), 5_000);
    const ready = (await (await fetch(`${t.url}/ready`)).json()) as {
      models: { ready: boolean; engine: unknown }[];
    };
    expect(ready.models[0]).toMatchObject({ ready: true, engine: { engine: "runner", state: "stopped" } });
    const again = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 2,
    });
    expect(again.usage?.completion_tokens).toBe(2);
    expect(engine.processStatus()).toMatchObject({ state: "ready", restarts: 0, starts: 2 });
  });

  it("runs the runner with a one-thread libuv pool and leaves the server's own pool alone", async () => {
    const t = await start();
    const pid = engineOf(t).processStatus().pid as number;
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(env).toContain("UV_THREADPOOL_SIZE=1");
    expect(process.env.UV_THREADPOOL_SIZE).not.toBe("1");
    expect(runnerEnv({ UV_THREADPOOL_SIZE: "16", NODE_OPTIONS: "--inspect", PATH: "/bin" })).toEqual({
      UV_THREADPOOL_SIZE: "1",
      PATH: "/bin",
    });
  });

  it("leaves no runner (nor its watchdog) behind when the server stops", async () => {
    const t = await start();
    const pid = engineOf(t).processStatus().pid as number;
    expect(alive(pid)).toBe(true);
    await t.stop();
    servers.splice(servers.indexOf(t), 1);
    expect(alive(pid)).toBe(false);
    // The runner leads its own process group, watchdog included.
    await waitFor(() => !groupAlive(pid), 5_000);
  });

  it.skipIf(!existsSync(MAIN_JS) || !existsSync(BUILT_RUNNER))(
    "leaves no runner behind when Switchboard is killed with SIGKILL",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "sb-kill9-"));
      const config = join(dir, "switchboard.yaml");
      writeFileSync(
        config,
        [
          "port: 0",
          "log_level: info",
          `data_dir: ${dir}`,
          "demo_model: false",
          "models:",
          `  - { id: tiny, source: ${JSON.stringify(inject("tinyModelPath"))}, engine: runner, parallel: 1, context_size: 256 }`,
          "",
        ].join("\n"),
      );
      const server = spawn(process.execPath, [MAIN_JS, "serve", "--config", config], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(server);
      let output = "";
      server.stdout?.on("data", (chunk: Buffer) => {
        output += String(chunk);
      });
      await waitFor(() => output.includes("switchboard is listening"), 30_000);
      const match = /"pid":(\d+)[^\n]*engine process ready/.exec(output);
      const runnerPid = Number(match?.[1]);
      expect(alive(runnerPid)).toBe(true);
      server.kill("SIGKILL");
      // Its watchdog, or the closed IPC channel, whichever comes first.
      await waitFor(() => !alive(runnerPid), 10_000);
    },
  );
});
