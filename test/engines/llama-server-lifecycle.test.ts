import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { afterEach, describe, expect, inject, it } from "vitest";
import type { LlamaServerEngine } from "../../src/backends/local/engines/llama-server/llama-server-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { llamaServerForTests } from "./llama-server-binary.js";

const binary = await llamaServerForTests();
const FAILING = fileURLToPath(new URL("./fixtures/failing-llama-server.sh", import.meta.url));
const MAIN_JS = fileURLToPath(new URL("../../build/src/main.js", import.meta.url));
const hello = [{ role: "user" as const, content: "Hello there" }];

const servers: TestServer[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function engineOf(t: TestServer): LlamaServerEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as LlamaServerEngine;
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

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await sleep(25);
  }
}

async function start(model: Record<string, unknown> = {}, config: Record<string, unknown> = {}) {
  const t = await startTestServer({
    config: { engines: { llama_server: { binary } }, ...config },
    model: { engine: "llama-server", ...model },
  });
  servers.push(t);
  return t;
}

describe("an engine that cannot start", () => {
  it("answers with a JSON 503 naming the model, and the server stays up", async () => {
    const t = await startTestServer({
      config: { engines: { llama_server: { binary: FAILING } } },
      model: { engine: "llama-server", load: "on_demand" },
    });
    servers.push(t);
    const err = await t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain(TINY_MODEL);
    // The cause is in the log, with the engine's own words.
    expect(t.logs.join("")).toContain("failed to load model");
    const health = await fetch(`${t.url}/health`);
    expect(health.status).toBe(200);
  });

  it("refuses to start a server whose model asks for llama-server when there is none", async () => {
    await expect(
      startTestServer({
        config: { engines: { llama_server: { binary: "/nonexistent/llama-server" } } },
        model: { engine: "llama-server" },
      }),
    ).rejects.toThrow(/llama_server\.binary/);
  });
});

describe.skipIf(!binary)("the llama-server process under supervision", () => {
  it("ends a stream cut by an engine crash with an SSE error event, restarts the engine and serves again", async () => {
    const t = await start();
    const engine = engineOf(t);
    const firstPid = engine.processStatus().pid;
    // The tiny model is fast (and the client shares this process with the server): freeze the
    // engine and let it run in short bursts until the response has begun, then kill it.
    const pid = firstPid as number;
    process.kill(pid, "SIGSTOP");
    let begun = false;
    const creating = t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 480, stream: true })
      .finally(() => {
        begun = true;
      });
    while (!begun) {
      // A run of about a millisecond (a busy wait: a timer could fire much later on a loaded machine).
      process.kill(pid, "SIGCONT");
      const until = performance.now() + 1;
      while (performance.now() < until) {}
      process.kill(pid, "SIGSTOP");
      await sleep(30);
    }
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
    await waitFor(() => engine.processStatus().state === "ready" && engine.processStatus().pid !== firstPid);
    expect(engine.processStatus().restarts).toBe(1);
    const next = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 3,
    });
    expect(next.usage?.completion_tokens).toBe(3);
    expect(t.logs.join("")).toContain("engine process died; restarting it");
  });

  it("answers a non-streamed request cut by a crash with a JSON 503", async () => {
    const t = await start();
    const engine = engineOf(t);
    const pid = engine.processStatus().pid as number;
    const pending = t.client.chat.completions
      .create({ model: TINY_MODEL, messages: hello, max_tokens: 450 })
      .catch((e: unknown) => e);
    await waitFor(() => engine.stats().busySlots > 0);
    process.kill(pid, "SIGKILL");
    const err = await pending;
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  });

  it("stops the engine when idle and starts it again on the next request", async () => {
    const t = await start({ idle_ttl_ms: 1000 });
    const engine = engineOf(t);
    await t.client.chat.completions.create({ model: TINY_MODEL, messages: hello, max_tokens: 2 });
    const pid = engine.processStatus().pid;
    await waitFor(() => engine.processStatus().state === "stopped", 5_000);
    await waitFor(() => !alive(pid), 5_000);
    const ready = (await (await fetch(`${t.url}/ready`)).json()) as {
      models: { ready: boolean; engine: unknown }[];
    };
    // An idle engine starts on demand: the model stays ready.
    expect(ready.models[0]).toMatchObject({
      ready: true,
      engine: { engine: "llama-server", state: "stopped" },
    });
    const again = await t.client.chat.completions.create({
      model: TINY_MODEL,
      messages: hello,
      max_tokens: 2,
    });
    expect(again.usage?.completion_tokens).toBe(2);
    expect(engine.processStatus()).toMatchObject({ state: "ready", restarts: 0, starts: 2 });
  });

  it("leaves no llama-server behind when the server stops", async () => {
    const t = await start();
    const pid = engineOf(t).processStatus().pid;
    expect(alive(pid)).toBe(true);
    await t.stop();
    servers.splice(servers.indexOf(t), 1);
    expect(alive(pid)).toBe(false);
  });

  it.skipIf(!existsSync(MAIN_JS))(
    "leaves no llama-server behind when Switchboard is killed with SIGKILL",
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
          "engines:",
          `  llama_server: { binary: ${JSON.stringify(binary)} }`,
          "models:",
          `  - { id: tiny, source: ${JSON.stringify(inject("tinyModelPath"))}, engine: llama-server, parallel: 1, context_size: 256 }`,
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
      const enginePid = Number(match?.[1]);
      expect(alive(enginePid)).toBe(true);
      server.kill("SIGKILL");
      await waitFor(() => !alive(enginePid), 10_000);
    },
  );
});
