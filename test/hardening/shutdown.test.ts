import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { compiledCli } from "../helpers/compiled-cli.js";
import {
  contextFor,
  inFlightTokens,
  startTestServer,
  TEST_ENGINE,
  TEST_ENGINE_SPEEDUP,
  TINY_MODEL,
} from "../helpers/test-server.js";
import { waitFor } from "../helpers/wait-for.js";

/**
 * Graceful shutdown: SIGTERM to the real CLI lets in-flight streams finish within the grace
 * period, refuses new connections and exits 0; past the grace period streams are cut with an
 * error event (never a [DONE]) and the process still exits 0.
 */

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

/** Frames of an event stream read so far, and whether it ended. */
class StreamReader {
  text = "";
  ended = false;

  constructor(body: ReadableStream<Uint8Array>) {
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of body) this.text += decoder.decode(chunk, { stream: true });
      } catch {
        // A cut connection ends the stream too; what arrived is what counts.
      }
      this.ended = true;
    })();
  }

  get frames(): string[] {
    return this.text
      .split("\n\n")
      .filter((f) => f.startsWith("data: "))
      .map((f) => f.slice("data: ".length));
  }
}

async function startStream(url: string, maxTokens: number): Promise<StreamReader> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: maxTokens,
      stream: true,
    }),
  });
  expect(res.status).toBe(200);
  return new StreamReader(res.body as ReadableStream<Uint8Array>);
}

interface Cli {
  child: ChildProcess;
  url: string;
  port: number;
  output: string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
}

async function startCli(main: string, dir: string, config: Record<string, unknown>): Promise<Cli> {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  // JSON is YAML.
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [main, "serve", "--config", file], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SWITCHBOARD_CONFIG: "" },
  });
  const output: string[] = [];
  const cli = { child, output, exited: false } as Partial<Cli> as Cli;
  cli.exit = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      cli.exited = true;
      resolve({ code, signal });
    });
  });
  const address = new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        output.push(line);
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.msg === "switchboard is listening" && entry.address) resolve(entry.address);
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    void cli.exit.then(() => reject(new Error(`the CLI exited before listening:\n${output.join("\n")}`)));
  });
  cli.url = await address;
  cli.port = Number(new URL(cli.url).port);
  return cli;
}

describe("SIGTERM to the CLI", () => {
  let main: string;
  let dir: string;
  const running: Cli[] = [];
  const configFor = (grace: number) => ({
    port: 0,
    log_level: "info",
    demo_model: false,
    data_dir: join(dir, "data"),
    shutdown_grace_ms: grace,
    models: [
      {
        id: TINY_MODEL,
        source: inject("tinyModelPath"),
        // Long enough a generation (~1 s on the tiny model) to be in flight when the signal lands.
        context_size: 2048,
        parallel: 2,
        threads: 1,
        gpu_layers: 0,
        engine: TEST_ENGINE,
      },
    ],
  });

  beforeAll(async () => {
    main = await compiledCli();
    dir = mkdtempSync(join(tmpdir(), "switchboard-shutdown-"));
  });
  afterAll(() => {
    for (const cli of running) if (!cli.exited) cli.child.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("lets an in-flight stream finish with [DONE], refuses new connections, and exits 0", async () => {
    const cli = await startCli(main, dir, configFor(10_000));
    running.push(cli);
    const stream = await startStream(cli.url, inFlightTokens(1_200));
    await waitFor("the first chunks", () => stream.frames.length >= 2, 5_000);

    cli.child.kill("SIGTERM");
    await waitFor("new connections to be refused", () => connectionRefused(cli.port), 3_000);
    const refusedWhileStreaming = !stream.ended;

    await waitFor("the stream to end", () => stream.ended, 10_000);
    expect(stream.frames.at(-1)).toBe("[DONE]");
    expect(stream.text).toContain('"finish_reason":"length"');
    expect(stream.text).not.toContain('"error"');
    // The stream really was in flight when the listener closed.
    expect(refusedWhileStreaming).toBe(true);

    // Promptly: the finished stream's keep-alive connection does not hold the process open.
    await waitFor("the process to exit", () => cli.exited, 3_000);
    expect(await cli.exit).toEqual({ code: 0, signal: null });
    expect(cli.output.join("\n")).toContain('"msg":"stopped"');
  });

  it("past a short grace period cuts the stream with an error event and still exits 0 promptly", async () => {
    // Short enough a grace period for the stream to be far from done on a faster engine too.
    const cli = await startCli(main, dir, configFor(Math.round(200 / TEST_ENGINE_SPEEDUP)));
    running.push(cli);
    const stream = await startStream(cli.url, 2_000);
    await waitFor("the first chunks", () => stream.frames.length >= 2, 5_000);

    cli.child.kill("SIGTERM");
    await waitFor("the stream to end", () => stream.ended, 5_000);
    const frames = stream.frames;
    expect(frames).not.toContain("[DONE]");
    expect(/"finish_reason":"/.test(stream.text), "a finish reason was sent").toBe(false);
    // Far fewer than the 2000 tokens asked for: the generation was stopped, not finished.
    expect(frames.length).toBeLessThan(1_900);
    const last = JSON.parse(frames.at(-1) as string) as { error?: Record<string, unknown> };
    expect(last.error).toMatchObject({ type: "server_error", code: "service_unavailable", param: null });

    await waitFor("the process to exit", () => cli.exited, 3_000);
    expect(await cli.exit).toEqual({ code: 0, signal: null });
  });
});

describe("requests that reach a server while it shuts down", () => {
  it("are answered 503 with the JSON envelope and the connection closed", async () => {
    const maxTokens = inFlightTokens(400);
    const t = await startTestServer({ model: { context_size: contextFor(maxTokens) } });
    const { port } = new URL(t.url);
    const socket = net.connect(Number(port), "127.0.0.1");
    let received = "";
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
    });
    const closed = new Promise((resolve) => socket.once("close", resolve));
    await new Promise((resolve) => socket.once("connect", resolve));
    const body = JSON.stringify({
      model: TINY_MODEL,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: maxTokens,
      stream: true,
    });
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitFor("the stream to start", () => received.includes("data: "), 5_000);

    const stopped = t.stop();
    await waitFor("the listener to close", () => connectionRefused(Number(port)), 3_000);
    // A second request on the connection that is still busy streaming.
    socket.write("GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await closed;
    await stopped;

    expect(received).toContain("data: [DONE]");
    const second = received.slice(received.indexOf("HTTP/1.1", 1));
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    const [head = "", json = ""] = second.split("\r\n\r\n");
    expect(head).toMatch(/^content-type: application\/json/im);
    expect(head).toMatch(/^connection: close/im);
    expect(head).toMatch(/^x-request-id: \S+/im);
    expect(JSON.parse(json)).toEqual({
      error: { message: expect.any(String), type: "server_error", param: null, code: "service_unavailable" },
    });
  });

  // A generation cut short by the end of the grace period is a 503, not a partial 200.
  it("a non-streaming generation cut by the end of the grace period is not reported as a success", async () => {
    const maxTokens = inFlightTokens(480);
    const t = await startTestServer({
      config: { shutdown_grace_ms: 50 },
      model: { context_size: contextFor(maxTokens) },
    });
    const busy = async () =>
      /^switchboard_busy_slots\{model="tiny"\} 1$/m.test(await (await fetch(`${t.url}/metrics`)).text());
    const pending = fetch(`${t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: TINY_MODEL,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: maxTokens,
      }),
    });
    try {
      await waitFor("the generation to start", busy, 3_000);
      const stopped = t.stop();
      const res = await pending;
      await stopped;
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { type: "server_error" } });
    } finally {
      await t.stop();
    }
  });
});
