/**
 * The runner process: node-llama-cpp in a Node process of its own, started by the runner engine
 * under the ProcessSupervisor with an IPC channel and UV_THREADPOOL_SIZE=1 (node-llama-cpp's
 * token loop then keeps ggml's worker threads instead of re-creating them per token, which the
 * server process itself cannot afford: its file, DNS and crypto work share that pool).
 *
 * It runs the in-process engine and forwards its events; admission and slot choice stay in the
 * server, which names the slot of every generation. Log lines go to stderr, which the supervisor
 * copies into the server's log.
 */
import { pino } from "pino";
import { ServiceError } from "../../../../core/errors.js";
import type { EngineEvent } from "../../engine.js";
import { InProcessEngine } from "../in-process/in-process-engine.js";
import {
  type ChildMessage,
  encodePromptLogprobs,
  encodeToken,
  fromWireGeneration,
  type ParentMessage,
  type RunnerLoadOptions,
  S_DONE,
  S_END,
  S_ERROR,
  S_PROMPT,
  type WireGeneration,
} from "./protocol.js";

const send = (message: ChildMessage): void => {
  if (process.connected) process.send?.(message);
};

if (!process.send) {
  process.stderr.write("runner: started without an IPC channel; it is run by `switchboard serve`\n");
  process.exit(2);
}

/**
 * Plain lines on stderr ("error: could not load the model: ..."): the server logs them with its own
 * fields. The level comes with `load` (engines.runner.log_level); until then, info.
 */
const logger = pino(
  { level: "info", base: undefined, timestamp: false },
  {
    write(line: string) {
      const entry = JSON.parse(line) as { level: number; msg?: string; err?: { message?: string } };
      const level = pino.levels.labels[entry.level] ?? "info";
      const cause = entry.err?.message ? `: ${entry.err.message}` : "";
      process.stderr.write(`${level}: ${entry.msg ?? ""}${cause}\n`);
    },
  },
);

let engine: InProcessEngine | undefined;
let loading: Promise<void> | undefined;
/** Generations in progress, by the server's request id. */
const running = new Map<number, AbortController>();
/** Per slot, the generation that holds it: the next one on that slot starts after it. */
const slotTail: Promise<void>[] = [];

async function load(options: RunnerLoadOptions): Promise<void> {
  logger.level = options.logLevel;
  const instance = new InProcessEngine({
    modelPath: async () => options.modelPath,
    contextSize: options.contextSize,
    contextSizeCap: options.contextSizeCap,
    gpu: options.gpu,
    slots: options.slots,
    threads: options.threads,
    gpuLayers: options.gpuLayers,
    // The server queues; this engine's own scheduler is not used.
    maxQueue: 0,
    logger,
    embedding: options.embedding,
  });
  await instance.load();
  engine = instance;
}

async function generate(id: number, slot: number, wire: WireGeneration): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  const before = slotTail[slot];
  let finished!: () => void;
  slotTail[slot] = new Promise((resolve) => {
    finished = resolve;
  });
  try {
    await before;
    const current = engine;
    if (!current) throw new Error("no model is loaded");
    let ended = false;
    if (!controller.signal.aborted) {
      const events = current.generateOnSlot(slot, fromWireGeneration(wire), controller.signal);
      for await (const event of events as AsyncIterable<EngineEvent>) {
        if (event.type === "token") send(encodeToken(id, event));
        else if (event.type === "prompt") send([id, S_PROMPT, event.promptTokens, event.cachedTokens]);
        else if (event.type === "prompt-logprobs") send(encodePromptLogprobs(id, event.tokens));
        else {
          ended = true;
          send([id, S_END, event.reason, current.slotTokens(slot).length]);
        }
      }
    }
    if (!ended) send([id, S_DONE, current.slotTokens(slot).length]);
  } catch (err) {
    if (err instanceof ServiceError && err.kind === "invalid_request") {
      // The request was refused (a grammar llama.cpp cannot parse): the server answers 400.
      send([id, S_ERROR, err.message, err.code ?? "invalid_request", err.param]);
    } else {
      logger.error({ err, slot }, "generation failed");
      send([id, S_ERROR, (err as Error).message]);
    }
  } finally {
    running.delete(id);
    finished();
  }
}

async function call(message: Extract<ParentMessage, { op: "call" }>): Promise<void> {
  try {
    let value: unknown;
    if (message.method === "status") value = { running: running.size };
    else if (!engine) throw new Error("no model is loaded");
    else if (message.method === "embed") {
      const vectors = await engine.embedNow(message.inputs, new AbortController().signal);
      value = vectors.map((vector) => Array.from(vector));
    } else if (message.method === "tokenize")
      value = await engine.tokenize(message.text, {
        special: message.special,
        continuation: message.continuation,
      });
    else value = await engine.detokenize(message.tokens);
    send({ op: "result", id: message.id, value });
  } catch (err) {
    send({ op: "error", id: message.id, message: (err as Error).message });
  }
}

process.on("message", (message: ParentMessage) => {
  switch (message.op) {
    case "generate":
      void generate(message.id, message.slot, message.req);
      break;
    case "abort":
      running.get(message.id)?.abort();
      break;
    case "call":
      void call(message);
      break;
    case "load":
      loading ??= load(message.options);
      loading.then(
        () => send({ op: "loaded", meta: (engine as InProcessEngine).metadata() }),
        (err: unknown) => {
          logger.error({ err }, "could not load the model");
          loading = undefined;
          send({ op: "load-failed", message: (err as Error).message });
        },
      );
      break;
  }
});

// The server is gone (or closed the channel): nothing is left to serve. The supervisor's
// watchdog covers a kill -9 of the server as well; this is the quick way out.
process.on("disconnect", () => process.exit(0));
send({ op: "hello", pid: process.pid });
