import { Counter, Histogram, Registry } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LabeledCounter, LabeledHistogram } from "../../src/observability/labeled-metrics.js";
import { Metrics } from "../../src/observability/metrics.js";

const noModels = { all: () => [] };

/** Label values that the text format must escape: a quote, a backslash and a newline. */
const ODD_ROUTE = '/v1/we"ird\\rou\nte';

afterEach(() => {
  vi.restoreAllMocks();
});

describe("label-bound counters", () => {
  it("counts by label values, one series object per combination", () => {
    const counter = new LabeledCounter({
      name: "requests_total",
      help: "Requests",
      labelNames: ["method", "status"],
      registers: [new Registry()],
    });
    const ok = counter.labels("GET", "200");
    ok.inc();
    counter.labels("GET", "200").inc(2.5);
    counter.labels("GET", "500").inc(0);
    expect(counter.labels("GET", "200")).toBe(ok);
    expect(ok.value).toBe(3.5);
    expect(counter.labels("GET", "500").value).toBe(0);
  });

  it("refuses to go down, to count a non-number, or the wrong number of label values", () => {
    const counter = new LabeledCounter({
      name: "tokens_total",
      help: "Tokens",
      labelNames: ["model", "kind"],
      registers: [new Registry()],
    });
    expect(() => counter.labels("tiny", "prompt").inc(-1)).toThrow(/decrease/);
    expect(() => counter.labels("tiny", "prompt").inc(Number.NaN)).toThrow(TypeError);
    expect(() => counter.labels("tiny", "prompt").inc(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    const loose = counter.labels.bind(counter) as (...values: string[]) => unknown;
    expect(() => loose("tiny")).toThrow(/2 label values/);
    expect(() => loose("tiny", "prompt", "extra")).toThrow(/2 label values/);
    expect(counter.labels("tiny", "prompt").value).toBe(0);
  });

  it("exposes the same text as prom-client's Counter, escaping label values alike", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const config = { name: "switchboard_x_total", help: "Help with a \\ and a\nnewline" };
    const counter = new LabeledCounter({ ...config, labelNames: ["route", "status"], registers: [ours] });
    const reference = new Counter({ ...config, labelNames: ["route", "status"], registers: [theirs] });
    for (const [route, status, amount] of [
      ["/a", "200", 1],
      ["/b", "404", 3],
      ["/a", "200", 0.25],
      [ODD_ROUTE, "500", 1],
      ["/a", "500", 0],
    ] as const) {
      counter.labels(route, status).inc(amount);
      reference.inc({ route, status }, amount);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('switchboard_x_total{route="/v1/we\\"ird\\\\rou\\nte",status="500"} 1');
  });
});

describe("label-bound histograms", () => {
  const buckets = [0.1, 0.5, 1];

  it("keeps a count per bucket, the sum and the count; a value on a bound falls in that bucket", async () => {
    const registry = new Registry();
    const histogram = new LabeledHistogram({
      name: "latency_seconds",
      help: "Latency",
      labelNames: ["route"],
      buckets,
      registers: [registry],
    });
    for (const seconds of [0.05, 0.1, 0.3, 1, 7]) histogram.labels("/a").observe(seconds);
    const series = histogram.labels("/a");
    expect(series.count).toBe(5);
    expect(series.sum).toBeCloseTo(8.45);
    expect([...series.bucketCounts]).toEqual([2, 1, 1]);
    const text = await registry.metrics();
    // Cumulative on the wire, with everything (7 included) under +Inf.
    expect(text).toContain('latency_seconds_bucket{le="0.1",route="/a"} 2\n');
    expect(text).toContain('latency_seconds_bucket{le="0.5",route="/a"} 3\n');
    expect(text).toContain('latency_seconds_bucket{le="1",route="/a"} 4\n');
    expect(text).toContain('latency_seconds_bucket{le="+Inf",route="/a"} 5\n');
    expect(text).toContain('latency_seconds_sum{route="/a"} 8.45\n');
    expect(text).toContain('latency_seconds_count{route="/a"} 5\n');
  });

  it("refuses a non-number, the reserved label le, and buckets out of order", () => {
    const registers = [new Registry()];
    const histogram = new LabeledHistogram({
      name: "h_seconds",
      help: "H",
      labelNames: ["route"],
      buckets,
      registers,
    });
    expect(() => histogram.labels("/a").observe(Number.NaN)).toThrow(TypeError);
    expect(
      () => new LabeledHistogram({ name: "h2", help: "H", labelNames: ["le"], buckets, registers }),
    ).toThrow(/le is a reserved/);
    expect(
      () => new LabeledHistogram({ name: "h3", help: "H", labelNames: ["x"], buckets: [1, 0.5], registers }),
    ).toThrow(/increase/);
  });

  it("exposes the same text and JSON as prom-client's Histogram", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const config = { name: "switchboard_y_seconds", help: "Y", labelNames: ["model", "route"], buckets };
    const histogram = new LabeledHistogram({ ...config, registers: [ours] });
    const reference = new Histogram({ ...config, registers: [theirs] });
    for (const [model, route, seconds] of [
      ["tiny", "/a", 0.2],
      ["big", ODD_ROUTE, 3],
      ["tiny", "/a", 0.1 + 0.2],
      ["tiny", "/b", 0],
    ] as const) {
      histogram.labels(model, route).observe(seconds);
      reference.observe({ model, route }, seconds);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const withoutExemplars = (metrics: Awaited<ReturnType<Registry["getMetricsAsJSON"]>>) =>
      metrics.map((m) => ({ ...m, values: m.values.map(({ labels, value }) => ({ labels, value })) }));
    expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(
      withoutExemplars(await theirs.getMetricsAsJSON()),
    );
  });
});

describe("the series cap", () => {
  it("drops samples for label values past the cap, warns once, and keeps counting the series it has", async () => {
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const registry = new Registry();
    const counter = new LabeledCounter({
      name: "capped_total",
      help: "Capped",
      labelNames: ["model"],
      registers: [registry],
      maxSeries: 2,
    });
    const histogram = new LabeledHistogram({
      name: "capped_seconds",
      help: "Capped",
      labelNames: ["model"],
      buckets: [1],
      registers: [registry],
      maxSeries: 1,
    });
    for (const model of ["a", "b", "c", "d", "a"]) {
      counter.labels(model).inc();
      histogram.labels(model).observe(0.5);
    }
    const text = await registry.metrics();
    expect(text).toContain('capped_total{model="a"} 2');
    expect(text).toContain('capped_total{model="b"} 1');
    expect(text).not.toMatch(/model="[cd]"/);
    expect(text).toContain('capped_seconds_count{model="a"} 2');
    expect(text).not.toContain('capped_seconds_count{model="b"}');
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls.map(([message]) => String(message))).toEqual([
      "capped_seconds has 1 series; samples for new label values are dropped",
      "capped_total has 2 series; samples for new label values are dropped",
    ]);
  });

  it("starts over on a registry reset", async () => {
    const registry = new Registry();
    const counter = new LabeledCounter({
      name: "r_total",
      help: "R",
      labelNames: ["k"],
      registers: [registry],
    });
    counter.labels("x").inc();
    registry.resetMetrics();
    expect(await registry.metrics()).toBe("# HELP r_total R\n# TYPE r_total counter\n");
    expect(counter.labels("x").value).toBe(0);
  });
});

describe("the server's per-request metrics", () => {
  it("read on /metrics exactly as prom-client's Counter and Histogram would write them", async () => {
    const metrics = new Metrics(noModels);
    const reference = new Registry();
    const requests = new Counter({ ...fields(metrics.requests), registers: [reference] });
    const latency = new Histogram({ ...fields(metrics.latency), registers: [reference] });
    const tokens = new Counter({ ...fields(metrics.tokens), registers: [reference] });
    const firstToken = new Histogram({ ...fields(metrics.timeToFirstToken), registers: [reference] });
    const calls: [method: string, route: string, status: number, seconds: number, model?: string][] = [
      ["POST", "/v1/chat/completions", 200, 0.3, "tiny"],
      ["GET", "/v1/models", 200, 0.001],
      ["POST", "/v1/chat/completions", 400, 200],
      ["GET", "unknown", 404, 0.01],
      ["POST", "/v1/chat/completions", 200, 1.7, "gpt-4o"],
    ];
    for (const [method, route, status, seconds, model] of calls) {
      metrics.requests.labels(method, route, String(status)).inc();
      requests.inc({ method, route, status: String(status) });
      metrics.latency.labels(route).observe(seconds);
      latency.observe({ route }, seconds);
      if (!model) continue;
      metrics.timeToFirstToken.labels(model).observe(seconds / 10);
      firstToken.observe({ model }, seconds / 10);
      metrics.recordUsage(model, { promptTokens: 11, completionTokens: 7, cachedTokens: 0 });
      tokens.inc({ model, kind: "prompt" }, 11);
      tokens.inc({ model, kind: "cached" }, 0);
      tokens.inc({ model, kind: "completion" }, 7);
    }
    for (const { name } of [metrics.requests, metrics.latency, metrics.tokens, metrics.timeToFirstToken])
      expect(await metrics.registry.getSingleMetricAsString(name)).toBe(
        await reference.getSingleMetricAsString(name),
      );
  });
});

/** What prom-client needs to build the same metric as one of ours. */
function fields(metric: {
  name: string;
  help: string;
  labelNames: readonly string[];
  upperBounds?: readonly number[];
}) {
  return {
    name: metric.name,
    help: metric.help,
    labelNames: [...metric.labelNames],
    ...(metric.upperBounds ? { buckets: [...metric.upperBounds] } : {}),
  };
}
