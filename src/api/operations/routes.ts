import type { FastifyInstance } from "fastify";
import type { EngineReport } from "../../core/generation.js";
import type { Metrics } from "../../observability/metrics.js";
import type { ModelRegistry } from "../../router/model-registry.js";

/** Liveness, readiness and Prometheus metrics for operators and orchestrators. */
export async function operationsRoutes(
  app: FastifyInstance,
  opts: { registry: ModelRegistry; metrics: Metrics; isShuttingDown: () => boolean },
): Promise<void> {
  app.get("/health", async () => ({ status: "ok" }));

  app.get("/ready", async (_request, reply) => {
    // Models loaded on first use do not hold readiness back: they load when asked for.
    const models = opts.registry.all().map((d) => {
      const health = d.backend.health();
      return {
        id: d.id,
        // A model whose engine process crashed is not ready until it is back.
        ready: health.serving,
        required: d.loadAtStart,
        ...d.backend.stats(),
        ...(health.engine && { engine: withoutBinaryPath(health.engine) }),
        ...(health.deployments && { deployments: health.deployments }),
      };
    });
    const ready = !opts.isShuttingDown() && models.every((m) => m.ready || !m.required);
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", models });
  });

  app.get("/metrics", async (_request, reply) => {
    const text = await opts.metrics.registry.metrics();
    return reply.type(opts.metrics.registry.contentType).send(text);
  });
}

/**
 * Any key may read /ready, so the llama-server binary is described there by its origin and build
 * but not by its path on the server's disk; /admin/models (admin keys) has the path too.
 */
function withoutBinaryPath(report: EngineReport) {
  const { choice } = report;
  if (!choice?.binary) return report;
  const { path: _path, ...described } = choice.binary;
  return { ...report, choice: { ...choice, binary: described } };
}
