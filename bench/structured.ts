/**
 * `npm run bench:structured`: what a grammar costs. Output tokens/s of `json_schema` strict
 * generation (a ten-field schema with nesting and enums) against unconstrained generation, on
 * the same server, model, prompt and settings, per engine; and the time to compile that schema
 * to a grammar, cold and cached. Results go to stdout, progress to stderr.
 *
 * Repetitions alternate constrained and unconstrained, so drift on a shared machine hits both.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import { validateConfig } from "../src/config/load.js";
import { findLlamaServer } from "../src/engine-build/find-llama-server.js";
import { compileJsonSchema } from "../src/grammar/json-schema-gbnf.js";
import type { ModelPreset } from "../src/models/make-model.js";
import { createLogger } from "../src/observability/logger.js";
import { startServer } from "../src/server.js";
import { benchModel } from "./bench-model.js";
import { fmt, formatTable, median, progress } from "./harness.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "smollm2-135m" },
    engines: { type: "string", default: "in-process,llama-server" },
    reps: { type: "string", default: "6" },
    tokens: { type: "string", default: "128" },
    threads: { type: "string", default: "2" },
  },
});

/** A realistic extraction schema: ten fields, nesting, enums, bounds. */
export const BENCH_SCHEMA = {
  type: "object",
  properties: {
    id: { type: "string", format: "uuid" },
    title: { type: "string", maxLength: 40 },
    status: { type: "string", enum: ["open", "closed", "pending", "archived"] },
    priority: { type: "integer", minimum: 1, maximum: 5 },
    score: { type: "number", minimum: 0, maximum: 100 },
    tags: { type: "array", items: { type: "string", maxLength: 12 }, maxItems: 4 },
    owner: {
      type: "object",
      properties: {
        name: { type: "string", maxLength: 24 },
        email: { type: "string", format: "email" },
        role: { type: "string", enum: ["admin", "member", "guest"] },
      },
      required: ["name", "email", "role"],
      additionalProperties: false,
    },
    created: { type: "string", format: "date" },
    archived: { type: "boolean" },
    parent: { anyOf: [{ type: "null" }, { type: "string", maxLength: 16 }] },
  },
  required: ["id", "title", "status", "priority", "score", "tags", "owner", "created", "archived", "parent"],
  additionalProperties: false,
} as const;

function compileTimes(): { coldMs: number; cachedMs: number } {
  const cold: number[] = [];
  const cached: number[] = [];
  for (let i = 0; i < 30; i++) {
    // A different title each time makes a different cache key: every compile is cold.
    const schema = { ...BENCH_SCHEMA, title: `bench ${i} ${Date.now()}` };
    let start = performance.now();
    compileJsonSchema(schema, { strict: true, param: "schema" });
    cold.push(performance.now() - start);
    start = performance.now();
    compileJsonSchema(schema, { strict: true, param: "schema" });
    cached.push(performance.now() - start);
  }
  return { coldMs: median(cold.slice(5)), cachedMs: median(cached.slice(5)) };
}

interface Cell {
  engine: string;
  constrainedTps: number;
  freeTps: number;
  constrainedTokens: number;
}

async function measureEngine(engine: string, modelPath: string): Promise<Cell | undefined> {
  if (engine === "llama-server" && !(await findLlamaServer({}))) {
    progress("llama-server: no binary (run `npm run engine:build`); skipped");
    return undefined;
  }
  const config = validateConfig({
    port: 0,
    log_level: "warn",
    demo_model: false,
    data_dir: mkdtempSync(join(tmpdir(), "sb-bench-structured-")),
    models: [
      {
        id: "bench",
        source: modelPath,
        engine,
        parallel: 1,
        threads: Number(values.threads),
        context_size: 1024,
        gpu_layers: 0,
      },
    ],
  });
  const server = await startServer(config, { logger: createLogger("warn") });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
  const base = {
    model: "bench",
    messages: [{ role: "user" as const, content: "Describe the ticket as JSON." }],
    temperature: 0.8,
    max_completion_tokens: Number(values.tokens),
  };
  const format = {
    type: "json_schema" as const,
    json_schema: { name: "ticket", schema: BENCH_SCHEMA, strict: true },
  };
  const run = async (constrained: boolean, seed: number) => {
    const start = performance.now();
    const completion = await client.chat.completions.create({
      ...base,
      seed,
      ...(constrained ? { response_format: format } : {}),
    });
    const seconds = (performance.now() - start) / 1000;
    const tokens = completion.usage?.completion_tokens ?? 0;
    return { tps: tokens / seconds, tokens };
  };
  try {
    await run(false, 0);
    await run(true, 0);
    const constrained: number[] = [];
    const free: number[] = [];
    const tokens: number[] = [];
    for (let rep = 1; rep <= Number(values.reps); rep++) {
      const order = rep % 2 === 0 ? [true, false] : [false, true];
      for (const isConstrained of order) {
        const result = await run(isConstrained, rep);
        (isConstrained ? constrained : free).push(result.tps);
        if (isConstrained) tokens.push(result.tokens);
      }
      progress(`${engine}: rep ${rep} done`);
    }
    return {
      engine,
      constrainedTps: median(constrained),
      freeTps: median(free),
      constrainedTokens: median(tokens),
    };
  } finally {
    await server.stop();
  }
}

const compile = compileTimes();
const modelPath = await benchModel(values.model as ModelPreset, "f16");
const rows: Cell[] = [];
for (const engine of (values.engines ?? "").split(",").filter(Boolean)) {
  const cell = await measureEngine(engine, modelPath);
  if (cell) rows.push(cell);
}
process.stdout.write(
  `Schema compile (10 fields): cold ${fmt(compile.coldMs, 2)} ms, cached ${fmt(compile.cachedMs, 4)} ms\n\n`,
);
process.stdout.write(
  formatTable(
    ["engine", "json_schema tok/s", "free tok/s", "ratio", "tokens per constrained answer"],
    rows.map((r) => [
      r.engine,
      fmt(r.constrainedTps, 1),
      fmt(r.freeTps, 1),
      fmt(r.constrainedTps / r.freeTps, 2),
      String(r.constrainedTokens),
    ]),
  ),
);
