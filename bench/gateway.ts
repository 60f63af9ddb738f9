/**
 * Gateway benchmark: what keys, limits and usage accounting add to a request, with no model in
 * the way. A stand-in backend answers every chat completion at once with one token, so the
 * latency measured is Switchboard's own: HTTP, validation, auth, limits, usage, encoding.
 *
 *   npm run bench:gateway [-- --requests 3000 --redis redis://127.0.0.1:6379]
 *
 * Rows: auth off (no access layer at all), auth + limits in memory, auth + limits in Redis.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { buildApp } from "../src/app.js";
import { buildAccess } from "../src/composition/build-access.js";
import { validateConfig } from "../src/config/load.js";
import type {
  BackendCapabilities,
  GenerationPart,
  GenerationRequest,
  ModelBackend,
  PreparedGeneration,
} from "../src/core/generation.js";
import { createLogger } from "../src/observability/logger.js";
import { ModelRegistry } from "../src/router/model-registry.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "3000" },
    warmup: { type: "string", default: "300" },
    redis: { type: "string", default: "redis://127.0.0.1:6379" },
  },
});
const REQUESTS = Number(values.requests);
const WARMUP = Number(values.warmup);

/** Answers instantly: one text part, a finish, usage. */
class InstantBackend implements ModelBackend {
  readonly capabilities: BackendCapabilities = {
    chat: true,
    completions: true,
    embeddings: false,
    tools: false,
    structuredOutputs: false,
    vision: false,
    audioInput: false,
    fileInput: false,
    logprobs: false,
  };
  async prepare(req: GenerationRequest): Promise<PreparedGeneration> {
    return {
      request: req,
      estimate: { promptTokens: 12, maxTokensPerChoice: req.maxTokens ?? 16, choices: req.n, exact: true },
      progress: { promptTokens: 12, completionTokens: 1, cachedTokens: 0 },
    };
  }
  async *generate(): AsyncGenerator<GenerationPart> {
    yield { type: "text", choice: 0, text: "ok" };
    yield { type: "finish", choice: 0, reason: "length" };
    yield { type: "usage", promptTokens: 12, completionTokens: 1, cachedTokens: 0 };
  }
  async ready() {}
  isReady() {
    return true;
  }
  health() {
    return { loaded: true, serving: true };
  }
  stats() {
    return { slots: 1, busySlots: 0, queued: 0 };
  }
  async close() {}
}

interface Row {
  name: string;
  p50: number;
  p90: number;
  p99: number;
  rps: number;
}

async function measure(
  name: string,
  setup: () => Promise<{ url: string; key?: string; close(): Promise<void> }>,
) {
  const target = await setup();
  const agent = new Agent({ connections: 1, pipelining: 1 });
  const body = JSON.stringify({
    model: "instant",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 4,
  });
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (target.key) headers.authorization = `Bearer ${target.key}`;
  const once = async () => {
    const started = performance.now();
    const res = await request(`${target.url}/v1/chat/completions`, {
      method: "POST",
      body,
      headers,
      dispatcher: agent,
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${name}: status ${res.statusCode}`);
    return performance.now() - started;
  };
  for (let i = 0; i < WARMUP; i++) await once();
  const times: number[] = [];
  const began = performance.now();
  for (let i = 0; i < REQUESTS; i++) times.push(await once());
  const wall = (performance.now() - began) / 1000;
  await agent.close();
  await target.close();
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] as number;
  return { name, p50: at(0.5), p90: at(0.9), p99: at(0.99), rps: REQUESTS / wall } satisfies Row;
}

function registry(): ModelRegistry {
  const r = new ModelRegistry();
  r.add({
    id: "instant",
    aliases: [],
    ownedBy: "bench",
    created: 0,
    systemFingerprint: "fp_bench",
    backend: new InstantBackend(),
    loadAtStart: false,
  });
  return r;
}

type Mode = "off" | "memory" | "redis";

async function serve(mode: Mode) {
  const config = validateConfig({
    port: 0,
    log_level: "silent",
    demo_model: false,
    data_dir: mkdtempSync(join(tmpdir(), "sb-gw-")),
    ...(mode === "redis" ? { redis: values.redis, redis_prefix: `bench${process.pid}:` } : {}),
  });
  const logger = createLogger("silent");
  const access = mode === "off" ? undefined : await buildAccess(config, logger);
  const app = buildApp(config, { registry: registry(), logger, access });
  const url = await app.fastify.listen({ host: "127.0.0.1", port: 0 });
  // A member key with every limit set, so each request does the whole work of checking them.
  const key = access
    ? (
        await access.admin.createKey("proj_default", {
          name: "bench",
          role: "member",
          limits: { requests_per_minute: 1e9, tokens_per_minute: 1e12, max_concurrent: 1000 },
        })
      ).secret
    : undefined;
  return {
    url,
    key,
    close: async () => {
      await app.fastify.close();
      await access?.close();
    },
  };
}

const rows: Row[] = [];
process.stderr.write(`gateway benchmark: ${REQUESTS} sequential requests per row after ${WARMUP} warm-up\n`);
rows.push(await measure("auth off (no access layer)", () => serve("off")));
rows.push(await measure("auth + limits, memory", () => serve("memory")));
try {
  rows.push(await measure("auth + limits, Redis", () => serve("redis")));
} catch (err) {
  process.stderr.write(`Redis row skipped: ${(err as Error).message}\n`);
}

const base = rows[0] as Row;
const fmt = (n: number) => n.toFixed(3).padStart(8);
console.log("| configuration | p50 ms | p90 ms | p99 ms | req/s | p50 added |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.name} | ${fmt(r.p50)} | ${fmt(r.p90)} | ${fmt(r.p99)} | ${r.rps.toFixed(0)} | ${r === base ? "—" : `${(r.p50 - base.p50).toFixed(3)} ms`} |`,
  );
}
const memory = rows[1];
const redis = rows[2];
console.log(
  `summary: memory adds ${memory ? (memory.p50 - base.p50).toFixed(3) : "?"} ms p50 (target ≤ 0.2)` +
    (redis
      ? `, Redis adds ${(redis.p50 - base.p50).toFixed(3)} ms p50 (target ≤ 1)`
      : ", Redis not measured"),
);
