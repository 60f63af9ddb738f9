import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { type BackendStats, ENGINE_STATES, type ModelBackend } from "../core/generation.js";
import { LabeledCounter, LabeledHistogram } from "./labeled-metrics.js";
import { residentBytes } from "./process-memory.js";

/** The models whose state the metrics report (the model registry). */
export interface ServedModels {
  all(): readonly { id: string; backend: Pick<ModelBackend, "stats" | "health"> }[];
}

const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * Prometheus metrics for one app instance (a registry of its own, so tests can run many apps).
 * What every request writes (requests, latency, time to first token, tokens) uses the label-bound
 * series of labeled-metrics.ts; the rest is prom-client's.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: LabeledCounter<readonly ["method", "route", "status"]>;
  readonly latency: LabeledHistogram<readonly ["route"]>;
  readonly tokens: LabeledCounter<readonly ["model", "kind"]>;
  readonly timeToFirstToken: LabeledHistogram<readonly ["model"]>;
  /** Vector store ingestion: seconds by stage (extract, chunk, embed, store), chunks written, bytes of completed files. */
  readonly ingestionSeconds: Counter<"stage">;
  readonly ingestedChunks: Counter;
  readonly ingestedBytes: Counter;

  constructor(models: ServedModels) {
    const registers = [this.registry];
    collectDefaultMetrics({
      register: this.registry,
      prefix: "switchboard_",
      // The event-loop delay histogram samples on a timer. prom-client's 10 ms default woke an
      // idle server 100 times a second: ~10 ms of CPU every second, ~150 µs per streamed token
      // at 85 tokens/s. Ten samples a second still catch any stall that lasts 100 ms.
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
    this.requests = new LabeledCounter({
      name: "switchboard_http_requests_total",
      help: "HTTP requests by route and status",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.latency = new LabeledHistogram({
      name: "switchboard_http_request_duration_seconds",
      help: "Time from request to the end of the response",
      labelNames: ["route"],
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.tokens = new LabeledCounter({
      name: "switchboard_tokens_total",
      help: "Tokens processed, by model and kind (prompt, cached, completion)",
      labelNames: ["model", "kind"],
      registers,
    });
    this.timeToFirstToken = new LabeledHistogram({
      name: "switchboard_time_to_first_token_seconds",
      help: "Time from request to the first generated text",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.ingestionSeconds = new Counter({
      name: "switchboard_vector_ingestion_seconds_total",
      help: "Time vector store ingestion spent, by stage: extract (read and parse), chunk (tokenize and cut), embed, store (write chunks and complete); files ingested at once add up",
      labelNames: ["stage"],
      registers,
    });
    this.ingestedChunks = new Counter({
      name: "switchboard_vector_ingestion_chunks_total",
      help: "Chunks embedded and written by vector store ingestion",
      registers,
    });
    this.ingestedBytes = new Counter({
      name: "switchboard_vector_ingestion_bytes_total",
      help: "Bytes of the files vector store ingestion completed",
      registers,
    });
    const perModel = (name: string, help: string, read: (stats: BackendStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["model"],
        registers,
        collect() {
          for (const d of models.all()) this.set({ model: d.id }, read(d.backend.stats()));
        },
      });
    perModel("switchboard_queue_depth", "Requests waiting for a model slot", (s) => s.queued);
    perModel("switchboard_busy_slots", "Model slots generating now", (s) => s.busySlots);
    perModel("switchboard_slots", "Model slots configured", (s) => s.slots);
    new Gauge({
      name: "switchboard_model_ready",
      help: "1 when the model is loaded and can serve",
      labelNames: ["model"],
      registers,
      collect() {
        for (const d of models.all()) this.set({ model: d.id }, d.backend.health().loaded ? 1 : 0);
      },
    });
    new Gauge({
      name: "switchboard_engine_state",
      help: "State of each model's engine: 1 for the current state (engine processes: stopped, starting, ready, restarting, failed, closed)",
      labelNames: ["model", "engine", "state"],
      registers,
      collect() {
        this.reset();
        for (const d of models.all()) {
          const status = d.backend.health().engine;
          if (!status) continue;
          for (const state of ENGINE_STATES)
            this.set({ model: d.id, engine: status.engine, state }, status.state === state ? 1 : 0);
        }
      },
    });
    const deployments = function* () {
      for (const d of models.all())
        for (const report of d.backend.health().deployments ?? []) yield { model: d.id, report };
    };
    new Gauge({
      name: "switchboard_deployment_circuit_state",
      help: "Circuit of each deployment behind a routed model: 1 for the current state (closed, open, half_open)",
      labelNames: ["model", "deployment", "provider", "state"],
      registers,
      collect() {
        this.reset();
        for (const { model, report } of deployments()) {
          for (const state of ["closed", "open", "half_open"])
            this.set(
              { model, deployment: report.name, provider: report.provider, state },
              report.circuit === state ? 1 : 0,
            );
        }
      },
    });
    new Gauge({
      name: "switchboard_deployment_in_flight",
      help: "Requests in flight to each deployment behind a routed model",
      labelNames: ["model", "deployment"],
      registers,
      collect() {
        this.reset();
        for (const { model, report } of deployments())
          this.set({ model, deployment: report.name }, report.inFlight);
      },
    });
    new Counter({
      name: "switchboard_deployment_attempts_total",
      help: "Attempts sent to each deployment behind a routed model, by outcome (succeeded, failed)",
      labelNames: ["model", "deployment", "outcome"],
      registers,
      collect() {
        this.reset();
        for (const { model, report } of deployments()) {
          this.inc({ model, deployment: report.name, outcome: "succeeded" }, report.attempts.succeeded);
          this.inc({ model, deployment: report.name, outcome: "failed" }, report.attempts.failed);
        }
      },
    });
    new Gauge({
      name: "switchboard_engine_restarts",
      help: "Times a model's engine process was restarted after it died",
      labelNames: ["model", "engine"],
      registers,
      collect() {
        this.reset();
        for (const d of models.all()) {
          const status = d.backend.health().engine;
          if (status) this.set({ model: d.id, engine: status.engine }, status.restarts);
        }
      },
    });
    new Gauge({
      name: "switchboard_engine_resident_memory_bytes",
      help: "Resident memory of a model's engine process",
      labelNames: ["model", "engine"],
      registers,
      collect() {
        this.reset();
        for (const d of models.all()) {
          const status = d.backend.health().engine;
          const bytes = residentBytes(status?.pid);
          if (status && bytes !== undefined) this.set({ model: d.id, engine: status.engine }, bytes);
        }
      },
    });
  }

  recordUsage(
    model: string,
    usage: { promptTokens: number; completionTokens: number; cachedTokens: number },
  ): void {
    this.tokens.labels(model, "prompt").inc(usage.promptTokens);
    this.tokens.labels(model, "cached").inc(usage.cachedTokens);
    this.tokens.labels(model, "completion").inc(usage.completionTokens);
  }
}
