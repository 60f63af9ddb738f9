import type { Metric, Registry } from "prom-client";

/*
 * Counters and histograms for the per-request hot path, exposed through prom-client's Registry.
 *
 * prom-client's `inc(labels)` and `observe(labels, v)` hash the label object, validate every label
 * and look the series up on each call: about 2% of a busy gateway's CPU. Here a caller asks for a
 * series by its label values once per call (`labels("GET", "/v1/models", "200")`) and gets the
 * same object back every time: a lookup is a Map.get per label, with no object, string or
 * validation in it. The exposition text is prom-client's own (its Registry formats the values
 * these classes hand it, in the shape its Counter and Histogram hand it), so /metrics reads the
 * same byte for byte.
 */

/** One string per label name, in the order of the names. */
export type LabelValues<Names extends readonly string[]> = { readonly [K in keyof Names]: string };

interface LabeledConfig<Names extends readonly string[]> {
  name: string;
  help: string;
  labelNames: Names;
  registers: readonly Registry[];
  /** The most series the metric keeps; see DEFAULT_MAX_SERIES. */
  maxSeries?: number;
}

/**
 * A series lives as long as the process (counters are never reset), so a label value that took
 * anything a client sent would grow memory and every scrape without bound. Ours come from
 * configuration (model ids), route patterns, HTTP methods and status codes: a few hundred series
 * at most. Past the cap a new label combination is counted nowhere (and warned about once)
 * rather than becoming a leak; 2000 leaves room for every route, method and status.
 */
export const DEFAULT_MAX_SERIES = 2000;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The series of one metric: a tree of Maps, one level per label, with the series at the leaves. */
class SeriesTable<S> {
  /** Every series in the order it was first seen: the order prom-client exposes them in. */
  readonly all: S[] = [];
  private root = new Map<string, unknown>();
  private warned = false;

  constructor(
    private readonly metric: string,
    private readonly labelNames: readonly string[],
    private readonly maxSeries: number,
    private readonly make: (labels: Readonly<Record<string, string>>) => S,
    /** Where samples beyond the cap go: a series no scrape shows. */
    private readonly overflow: S,
  ) {}

  get(values: readonly string[]): S {
    const depth = this.labelNames.length;
    if (values.length !== depth)
      throw new Error(`${this.metric} takes ${depth} label values (${this.labelNames.join(", ")})`);
    let node = this.root;
    for (let i = 0; i < depth - 1; i++) {
      const next = node.get(values[i] as string) as Map<string, unknown> | undefined;
      if (next === undefined) return this.add(values);
      node = next;
    }
    return (node.get(values[depth - 1] as string) as S | undefined) ?? this.add(values);
  }

  clear(): void {
    this.root = new Map();
    this.all.length = 0;
  }

  private add(values: readonly string[]): S {
    if (this.all.length >= this.maxSeries) {
      if (!this.warned) {
        this.warned = true;
        process.emitWarning(
          `${this.metric} has ${this.maxSeries} series; samples for new label values are dropped`,
          "MetricsSeriesLimit",
        );
      }
      return this.overflow;
    }
    const labels: Record<string, string> = {};
    let node = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      const value = values[i] as string;
      labels[this.labelNames[i] as string] = value;
      let next = node.get(value) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(value, next);
      }
      node = next;
    }
    labels[this.labelNames[last] as string] = values[last] as string;
    const series = this.make(labels);
    node.set(values[last] as string, series);
    this.all.push(series);
    return series;
  }
}

function checkNames(name: string, labelNames: readonly string[]): void {
  if (!METRIC_NAME.test(name)) throw new Error(`Invalid metric name: ${name}`);
  if (labelNames.length === 0) throw new Error(`${name}: a labeled metric needs at least one label`);
  for (const label of labelNames)
    if (!LABEL_NAME.test(label) || label.startsWith("__"))
      throw new Error(`${name}: invalid label name ${label}`);
}

/**
 * prom-client's Registry types its metrics as its own classes, but reads only `name`, `help`,
 * `type` and `get()` (or `getForPromString()`), and calls `reset()`: what these classes have.
 */
function register(metric: object, registers: readonly Registry[]): void {
  for (const registry of registers) registry.registerMetric(metric as Metric);
}

/** One label combination of a counter. */
export class CounterSeries {
  value = 0;

  constructor(readonly labels: Readonly<Record<string, string>>) {}

  inc(amount = 1): void {
    if (!Number.isFinite(amount)) throw new TypeError(`Value is not a valid number: ${amount}`);
    if (amount < 0) throw new Error("It is not possible to decrease a counter");
    this.value += amount;
  }
}

/**
 * What both metrics share: the name, help and label names, the series by label values, and
 * registration. `makeSeries` builds a series for a label combination (and the unlisted overflow one).
 */
abstract class LabeledMetric<const Names extends readonly string[], S> {
  readonly aggregator = "sum";
  readonly name: string;
  readonly help: string;
  readonly labelNames: Names;
  protected readonly series: SeriesTable<S>;

  constructor(config: LabeledConfig<Names>, makeSeries: (labels: Readonly<Record<string, string>>) => S) {
    checkNames(config.name, config.labelNames);
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.series = new SeriesTable(
      config.name,
      config.labelNames,
      config.maxSeries ?? DEFAULT_MAX_SERIES,
      makeSeries,
      makeSeries({}),
    );
  }

  /** The series for these label values; the same object on every call. */
  labels(...values: LabelValues<Names>): S {
    return this.series.get(values);
  }

  reset(): void {
    this.series.clear();
  }
}

/** A counter with labels, exposed as prom-client's Counter exposes one. */
export class LabeledCounter<const Names extends readonly string[]> extends LabeledMetric<
  Names,
  CounterSeries
> {
  readonly type = "counter";

  constructor(config: LabeledConfig<Names>) {
    super(config, (labels) => new CounterSeries(labels));
    register(this, config.registers);
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.series.all.map((s) => ({ value: s.value, labels: s.labels })),
      aggregator: this.aggregator,
    };
  }
}

/** One label combination of a histogram: a count per bucket (not cumulative), the sum and the count. */
export class HistogramSeries {
  sum = 0;
  count = 0;
  readonly bucketCounts: Float64Array;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly upperBounds: readonly number[],
  ) {
    this.bucketCounts = new Float64Array(upperBounds.length);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.upperBounds;
    // A value above the last bound is in +Inf only, which is the count.
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.bucketCounts[i] = (this.bucketCounts[i] as number) + 1;
        break;
      }
    }
    this.sum += value;
    this.count += 1;
  }
}

/** A histogram with labels, exposed as prom-client's Histogram exposes one. */
export class LabeledHistogram<const Names extends readonly string[]> extends LabeledMetric<
  Names,
  HistogramSeries
> {
  readonly type = "histogram";
  readonly upperBounds: readonly number[];

  constructor(config: LabeledConfig<Names> & { buckets: readonly number[] }) {
    if (config.labelNames.includes("le")) throw new Error("le is a reserved label keyword");
    for (let i = 1; i < config.buckets.length; i++)
      if (!((config.buckets[i] as number) > (config.buckets[i - 1] as number)))
        throw new Error(`${config.name}: buckets must increase`);
    const upperBounds = Object.freeze([...config.buckets]);
    super(config, (labels) => new HistogramSeries(labels, upperBounds));
    this.upperBounds = upperBounds;
    register(this, config.registers);
  }

  /**
   * What the Registry formats. As prom-client's Histogram does, the series' labels go in
   * `sharedLabels`, so `le` comes first on a bucket line: `_bucket{le="0.5",route="/x"}`.
   */
  async getForPromString() {
    const bucketName = `${this.name}_bucket`;
    const sumName = `${this.name}_sum`;
    const countName = `${this.name}_count`;
    const values: {
      labels: Record<string, string | number>;
      sharedLabels: Readonly<Record<string, string>>;
      value: number;
      metricName: string;
    }[] = [];
    for (const s of this.series.all) {
      const sharedLabels = s.labels;
      let cumulative = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        cumulative += s.bucketCounts[i] as number;
        const le = this.upperBounds[i] as number;
        values.push({ labels: { le }, sharedLabels, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { le: "+Inf" }, sharedLabels, value: s.count, metricName: bucketName });
      values.push({ labels: {}, sharedLabels, value: s.sum, metricName: sumName });
      values.push({ labels: {}, sharedLabels, value: s.count, metricName: countName });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The JSON shape (`getMetricsAsJSON`): each value's labels are the series' plus `le`. */
  async get() {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ labels, sharedLabels, value, metricName }) => ({
        labels: { ...labels, ...sharedLabels },
        value,
        metricName,
      })),
    };
  }
}
