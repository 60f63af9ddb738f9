import { fileURLToPath } from "node:url";
import { invalidRequest } from "../../../../core/errors.js";
import type { EngineEvent, ModelMetadata, TokenGeneration } from "../../engine.js";
import type { EngineProcess, EngineProcessSpec } from "../process-supervisor.js";
import { type SlotRun, type SupervisedEngineOptions, SupervisedLocalEngine } from "../supervised-engine.js";
import {
  decodePromptLogprobs,
  decodeToken,
  type RunnerLoadOptions,
  S_DONE,
  S_END,
  S_ERROR,
  S_PROMPT,
  S_PROMPT_LOGPROBS,
  S_TOKEN,
  toWireGeneration,
} from "./protocol.js";
import { RunnerChannel, type RunnerStream } from "./runner-channel.js";

/** Tokens per slot default to the model's training context, capped (as in-process). */
export interface RunnerEngineOptions extends SupervisedEngineOptions {
  /** engines.runner.log_level: the runner's own log level. */
  logLevel: RunnerLoadOptions["logLevel"];
}

/**
 * node-llama-cpp in a supervised child Node process (the "runner", runner-child.ts) with
 * UV_THREADPOOL_SIZE=1, driven over Node's IPC channel: the model cannot take the server down
 * with it, and its token loop runs without the server's libuv work in the way.
 *
 * Admission, queueing and the choice of slot are SupervisedLocalEngine's; this is the IPC
 * transport: the runner's in-process engine runs the generation on the slot named here and sends
 * its events back one message each, and says at the end how many tokens the slot's cache holds.
 */
export class RunnerEngine extends SupervisedLocalEngine<RunnerEngineOptions> {
  /** The runner's in-process engine applies them. */
  readonly grammars = true;

  private readonly channels = new WeakMap<EngineProcess, RunnerChannel>();
  /** The metadata the first runner reported when it loaded the model. */
  private reported: ModelMetadata | undefined;

  constructor(options: RunnerEngineOptions) {
    super("runner", options);
  }

  /** What the runner is doing: generations in progress there (they outlive an abort by up to a token). */
  async runnerStatus(): Promise<{ running: number }> {
    return (await this.withChannel((channel, signal) => channel.call({ method: "status" }, signal))) as {
      running: number;
    };
  }

  protected processSpec(): EngineProcessSpec {
    const entry = runnerEntry();
    return {
      kind: this.engineName,
      model: this.options.modelId,
      command: process.execPath,
      args: () => entry,
      env: () => runnerEnv(),
      ipc: true,
      // Every start (first, restart, after idling) is ready only once the model is loaded.
      waitReady: async (process, signal) => {
        const channel = new RunnerChannel(process);
        this.channels.set(process, channel);
        const meta = await channel.load(
          {
            modelPath: this.modelPath as string,
            contextSize: this.options.contextSize,
            contextSizeCap: this.options.contextSizeCap,
            slots: this.options.slots,
            threads: this.options.threads,
            gpuLayers: this.options.gpuLayers,
            gpu: this.options.gpu,
            logLevel: this.options.logLevel,
            embedding: this.options.embedding,
          },
          signal,
        );
        this.reported ??= meta;
      },
    };
  }

  protected async readMetadata(): Promise<ModelMetadata> {
    if (!this.reported) throw new Error("the runner reported no model metadata");
    return this.reported;
  }

  protected async *generateOnSlot(
    process: EngineProcess,
    run: SlotRun,
    req: TokenGeneration,
    signal: AbortSignal,
  ): AsyncGenerator<EngineEvent> {
    const generated: number[] = [];
    /** What the runner says its slot holds at the end (undefined: not known). */
    let held: number | undefined;
    let stream: RunnerStream | undefined;
    const onAbort = () => stream?.close();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      stream = this.channelFor(process).generate(run.slot, toWireGeneration(req));
      if (signal.aborted) stream.close();
      for (;;) {
        const message = await stream.next();
        if (message === undefined) return;
        switch (message[1]) {
          case S_TOKEN: {
            const event = decodeToken(message);
            if (event.token >= 0) generated.push(event.token);
            yield event;
            break;
          }
          case S_PROMPT:
            yield { type: "prompt", promptTokens: message[2], cachedTokens: message[3] };
            break;
          case S_PROMPT_LOGPROBS:
            yield { type: "prompt-logprobs", tokens: decodePromptLogprobs(message) };
            break;
          case S_END:
            held = message[3];
            yield { type: "end", reason: message[2] };
            return;
          case S_DONE:
            held = message[2];
            return;
          case S_ERROR:
            if (message[3] !== undefined) throw invalidRequest(message[2], message[4] ?? null, message[3]);
            throw new Error(`the runner failed: ${message[2]}`);
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      stream?.close();
      // The runner keeps what it evaluated in the slot: the prompt, then what it generated.
      const tokens = [...req.promptTokens, ...generated];
      run.cached = held === undefined ? tokens : tokens.slice(0, held);
    }
  }

  /** The runner embeds its inputs one after another (see InProcessEngine.embedNow). */
  protected async embedInProcess(
    process: EngineProcess,
    inputs: readonly (readonly number[])[],
    signal: AbortSignal,
  ): Promise<Float32Array[]> {
    const vectors = (await this.channelFor(process).call({ method: "embed", inputs }, signal)) as number[][];
    return vectors.map((vector) => Float32Array.from(vector));
  }

  protected async tokenizeInEngine(
    text: string,
    options: { special: boolean; continuation?: boolean },
  ): Promise<number[]> {
    return (await this.withChannel((channel, signal) =>
      channel.call({ method: "tokenize", text, ...options }, signal),
    )) as number[];
  }

  protected async detokenizeInEngine(tokens: readonly number[]): Promise<string> {
    return (await this.withChannel((channel, signal) =>
      channel.call({ method: "detokenize", tokens }, signal),
    )) as string;
  }

  private withChannel<T>(call: (channel: RunnerChannel, signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.withProcess((process, signal) => call(this.channelFor(process), signal));
  }

  private channelFor(process: EngineProcess): RunnerChannel {
    const channel = this.channels.get(process);
    if (!channel) throw new Error("the runner process has no channel");
    return channel;
  }
}

/**
 * The runner's node arguments: the compiled runner-child.js next to this module, or, when the
 * server runs from its TypeScript sources (tests), runner-child.ts through a transpiling loader.
 */
export function runnerEntry(): string[] {
  const here = import.meta.url;
  if (here.endsWith(".ts")) {
    return [
      "--import",
      new URL("./dev-ts-loader.mjs", here).href,
      fileURLToPath(new URL("./runner-child.ts", here)),
    ];
  }
  return [fileURLToPath(new URL("./runner-child.js", here))];
}

/**
 * The runner's environment: ours, with libuv's thread pool at one thread (node-llama-cpp's token
 * loop then keeps ggml's workers; the server's own pool is left as it is) and without NODE_OPTIONS
 * (the runner's flags are its own).
 */
export function runnerEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(base)) {
    if (key === "NODE_OPTIONS" || key.startsWith("NODE_CHANNEL_")) continue;
    env[key] = value;
  }
  env.UV_THREADPOOL_SIZE = "1";
  return env;
}
