import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { runnerEnv } from "../../src/backends/local/engines/runner/runner-engine.js";
import type { SupervisedLocalEngine } from "../../src/backends/local/engines/supervised-engine.js";
import type { LocalBackend } from "../../src/backends/local/local-backend.js";
import { compiledCli } from "../helpers/compiled-cli.js";
import { alive, groupAlive } from "../helpers/process-state.js";
import { startTestServer, type TestServer, TINY_MODEL } from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";
import { llamaServerForTests } from "./llama-server-binary.js";

/**
 * Engine processes under supervision, the same for every engine that runs one: a crash fails
 * only the requests it was serving (a JSON 503 before the first token, an SSE error event after)
 * and the engine comes back; an idle engine stops and starts again on demand; nothing outlives
 * the server, not even a `kill -9` of it. Cases that only one engine has come last.
 */

const binary = await llamaServerForTests();
const FAILING_LLAMA_SERVER = fileURLToPath(new URL("./fixtures/failing-llama-server.sh", import.meta.url));
const hello = [{ role: "user" as const, content: "Hello there" }];

interface SupervisedEngineUnderTest {
  engine: "llama-server" | "runner";
  /** Whether this machine can run it (llama-server needs a binary). */
  available: boolean;
  /** The server configuration the engine needs. */
  config: Record<string, unknown>;
  /** A server whose engine cannot start, and the engine's own words about it in the log. */
  brokenStart(): { config: Record<string, unknown>; model: Record<string, unknown>; words: string };
}

const llamaServer: SupervisedEngineUnderTest = {
  engine: "llama-server",
  available: binary !== undefined,
  config: { engines: { llama_server: { binary } } },
  // A binary that fails as llama-server does with a corrupt model file or a missing library.
  brokenStart: () => ({
    config: { engines: { llama_server: { binary: FAILING_LLAMA_SERVER } } },
    model: {},
    words: "failed to load model",
  }),
};

const runner: SupervisedEngineUnderTest = {
  engine: "runner",
  available: true,
  config: {},
  brokenStart: () => {
    // A GGUF v3 header without any metadata: no architecture, no tensors.
    const bad = join(mkdtempSync(join(tmpdir(), "sb-runner-bad-")), "bad.gguf");
    writeFileSync(bad, Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0]), Buffer.alloc(16)]));
    return { config: {}, model: { source: bad }, words: "error: could not load the model" };
  },
};

const engines = [llamaServer, runner];

const servers: TestServer[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

function engineOf(t: TestServer): SupervisedLocalEngine {
  return (t.server.registry.resolve(TINY_MODEL).backend as LocalBackend).engine as SupervisedLocalEngine;
}

async function start(target: SupervisedEngineUnderTest, model: Record<string, unknown> = {}) {
  const t = await startTestServer({ config: target.config, model: { engine: target.engine, ...model } });
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

for (const target of engines) {
  // Needs no llama-server binary: the broken llama-server is a script.
  describe(`a ${target.engine} engine that cannot start`, () => {
    it("answers with a JSON 503 naming the model, logs the engine's own words, and the server stays up", async () => {
      const broken = target.brokenStart();
      const t = await startTestServer({
        config: broken.config,
        model: { engine: target.engine, load: "on_demand", ...broken.model },
      });
      servers.push(t);
      const err = await t.client.chat.completions
        .create({ model: TINY_MODEL, messages: hello, max_tokens: 2 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain(TINY_MODEL);
      expect(t.logs.join("")).toContain(broken.words);
      expect((await fetch(`${t.url}/health`)).status).toBe(200);
    });
  });

  describe.skipIf(!target.available)(`the ${target.engine} process under supervision`, () => {
    it("ends a stream cut by an engine crash with an SSE error event, restarts the engine and serves again", async () => {
      // As long a generation as the tiny model holds: llama-server writes several tokens in each
      // 1 ms burst, and the response must not be over before the test sees it begin.
      const t = await start(target, { context_size: 2048 });
      const engine = engineOf(t);
      const pid = engine.processStatus().pid as number;
      let begun = false;
      const creating = t.client.chat.completions
        .create({ model: TINY_MODEL, messages: hello, max_tokens: 2000, stream: true })
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
      await waitFor(
        "a new engine process",
        () => engine.processStatus().state === "ready" && engine.processStatus().pid !== pid,
        // A runner loads node-llama-cpp and the model anew: seconds, many on a busy machine.
        30_000,
      );
      expect(engine.processStatus().restarts).toBe(1);
      const next = await t.client.chat.completions.create({
        model: TINY_MODEL,
        messages: hello,
        max_tokens: 3,
      });
      expect(next.usage?.completion_tokens).toBe(3);
      expect(t.logs.join("")).toContain("engine process died; restarting it");
    });

    it("answers a stream whose engine dies before the first token with a JSON 503", async () => {
      const t = await start(target);
      const engine = engineOf(t);
      const pid = engine.processStatus().pid as number;
      // Tokenizing is the engine process's too: the same prompt once before, so this one's
      // pieces come from the tokenize cache and the request goes on to take a slot.
      await t.client.chat.completions.create({ model: TINY_MODEL, messages: hello, max_tokens: 1 });
      process.kill(pid, "SIGSTOP");
      const pending = t.client.chat.completions
        .create({ model: TINY_MODEL, messages: hello, max_tokens: 20, stream: true })
        .catch((e: unknown) => e);
      await waitFor("the request to take a slot", () => engine.stats().busySlots > 0);
      process.kill(pid, "SIGKILL");
      const err = await pending;
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain(TINY_MODEL);
      expect(engine.stats().busySlots).toBe(0);
    });

    it("answers a non-streamed request cut by a crash with a JSON 503", async () => {
      const t = await start(target);
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

    it("stops the engine when idle and starts it again on the next request", async () => {
      const t = await start(target, { idle_ttl_ms: 1000 });
      const engine = engineOf(t);
      await t.client.chat.completions.create({ model: TINY_MODEL, messages: hello, max_tokens: 2 });
      const pid = engine.processStatus().pid;
      await waitFor("the idle engine to stop", () => engine.processStatus().state === "stopped", 5_000);
      await waitFor("the idle engine to exit", () => !alive(pid), 5_000);
      const ready = (await (await fetch(`${t.url}/ready`)).json()) as {
        models: { ready: boolean; engine: unknown }[];
      };
      // An idle engine starts on demand: the model stays ready.
      expect(ready.models[0]).toMatchObject({
        ready: true,
        engine: { engine: target.engine, state: "stopped" },
      });
      const again = await t.client.chat.completions.create({
        model: TINY_MODEL,
        messages: hello,
        max_tokens: 2,
      });
      expect(again.usage?.completion_tokens).toBe(2);
      expect(engine.processStatus()).toMatchObject({ state: "ready", restarts: 0, starts: 2 });
    });

    it("leaves no engine process (nor its watchdog) behind when the server stops", async () => {
      const t = await start(target);
      const pid = engineOf(t).processStatus().pid as number;
      expect(alive(pid)).toBe(true);
      await t.stop();
      servers.splice(servers.indexOf(t), 1);
      expect(alive(pid)).toBe(false);
      // The engine leads its own process group, watchdog included.
      await waitFor("the engine's process group to be gone", () => !groupAlive(pid), 5_000);
    });

    describe("when Switchboard itself is killed", () => {
      let main: string;
      beforeAll(async () => {
        main = await compiledCli();
      });

      it("leaves no engine process behind after a SIGKILL", async () => {
        const dir = mkdtempSync(join(tmpdir(), "sb-kill9-"));
        const config = join(dir, "switchboard.yaml");
        const source = inject("tinyModelPath");
        // JSON is YAML.
        writeFileSync(
          config,
          JSON.stringify({
            port: 0,
            log_level: "info",
            data_dir: dir,
            demo_model: false,
            ...target.config,
            models: [{ id: "tiny", source, engine: target.engine, parallel: 1, context_size: 256 }],
          }),
        );
        const server = spawn(process.execPath, [main, "serve", "--config", config], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        children.push(server);
        let output = "";
        server.stdout?.on("data", (chunk: Buffer) => {
          output += String(chunk);
        });
        await waitFor("the server to listen", () => output.includes("switchboard is listening"), 30_000);
        const match = /"pid":(\d+)[^\n]*engine process ready/.exec(output);
        const enginePid = Number(match?.[1]);
        expect(alive(enginePid)).toBe(true);
        server.kill("SIGKILL");
        // Its watchdog (or, for the runner, its closed IPC channel), whichever comes first.
        await waitFor("the engine to exit", () => !alive(enginePid), 10_000);
      });
    });
  });
}

// Cases only one engine has.

describe("llama-server only: a model that asks for it", () => {
  it("refuses to start a server whose model asks for llama-server when there is none", async () => {
    await expect(
      startTestServer({
        config: { engines: { llama_server: { binary: "/nonexistent/llama-server" } } },
        model: { engine: "llama-server" },
      }),
    ).rejects.toThrow(/llama_server\.binary/);
  });
});

describe("runner only: its environment", () => {
  it("runs the runner with a one-thread libuv pool and leaves the server's own pool alone", async () => {
    const t = await start(runner);
    const pid = engineOf(t).processStatus().pid as number;
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(env).toContain("UV_THREADPOOL_SIZE=1");
    expect(process.env.UV_THREADPOOL_SIZE).not.toBe("1");
    expect(runnerEnv({ UV_THREADPOOL_SIZE: "16", NODE_OPTIONS: "--inspect", PATH: "/bin" })).toEqual({
      UV_THREADPOOL_SIZE: "1",
      PATH: "/bin",
    });
  });
});
