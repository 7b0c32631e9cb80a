import { GpuccError } from '@gpucc/hal';
import { formatValue, LABEL_NAME, type Labels, METRIC_NAME, type MetricType, type Sample } from './exposition.js';

/**
 * What a registry reads at each scrape: a family's name, help and type, and its samples computed
 * now. Counters, gauges and histograms are collectors; so is any function over live state
 * (see Registry.collect), which saves keeping a second copy of that state in step by hand.
 */
export interface Collector {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  collect(): readonly Sample[] | Promise<readonly Sample[]>;
}

export interface InstrumentOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export type LabelValues<L extends string> = Readonly<Record<L, string>>;

/** A defect in how a metric is declared or used: the code is wrong, not the host. */
export function invalidMetric(name: string, problem: string): GpuccError {
  return new GpuccError('ERR_GPUCC_METRIC_INVALID', `metric ${name}: ${problem}`, {
    hint: 'this is a defect in the binary: report it with the binary version',
    details: { metric: name },
  });
}

export function checkName(name: string): void {
  if (!METRIC_NAME.test(name)) throw invalidMetric(name, 'not a valid Prometheus metric name');
}

export function checkLabelNames(name: string, labelNames: readonly string[], reserved: readonly string[] = []): void {
  const seen = new Set<string>();
  for (const label of labelNames) {
    // docs/facts/prometheus-text-format.md#names: names starting with __ are Prometheus's own.
    if (!LABEL_NAME.test(label) || label.startsWith('__') || reserved.includes(label) || seen.has(label)) {
      throw invalidMetric(name, `label name "${label}" is invalid, reserved or repeated`);
    }
    seen.add(label);
  }
}

/** Series by label values, written in the declared label order whatever order the caller gave. */
abstract class Instrument<L extends string, S> implements Collector {
  abstract readonly type: MetricType;
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected readonly series = new Map<string, { labels: Labels; state: S }>();

  constructor(options: InstrumentOptions<L>, reserved: readonly string[] = []) {
    checkName(options.name);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
    checkLabelNames(options.name, this.labelNames, reserved);
  }

  /** Every series; a metric without labels has its one series from the start, at zero. */
  protected entries(): Array<{ labels: Labels; state: S }> {
    if (this.labelNames.length === 0) this.stateOf(undefined);
    return [...this.series.values()];
  }

  protected abstract initial(): S;

  protected stateOf(labels: LabelValues<L> | undefined): S {
    const given = labels ?? ({} as LabelValues<L>);
    const names = Object.keys(given);
    if (names.length !== this.labelNames.length || !this.labelNames.every((l) => typeof given[l] === 'string')) {
      throw invalidMetric(this.name, `labels {${names.join(',')}} given, {${this.labelNames.join(',')}} declared`);
    }
    const values = this.labelNames.map((l) => given[l]);
    const key = values.join('\u0000');
    let entry = this.series.get(key);
    if (entry === undefined) {
      const ordered: Record<string, string> = {};
      for (const l of this.labelNames) ordered[l] = given[l];
      entry = { labels: ordered, state: this.initial() };
      this.series.set(key, entry);
    }
    return entry.state;
  }

  abstract collect(): Sample[];
}

/** Splits the (value) and (labels, value) call forms. */
function args<L extends string>(
  a: number | LabelValues<L> | undefined,
  b: number | undefined,
  fallback: number,
): [LabelValues<L> | undefined, number] {
  return typeof a === 'object' ? [a, b ?? fallback] : [undefined, a ?? fallback];
}

/** One number per series. */
abstract class ValueInstrument<L extends string> extends Instrument<L, { value: number }> {
  protected initial() {
    return { value: 0 };
  }
  collect(): Sample[] {
    return this.entries().map((s) => ({ labels: s.labels, value: s.state.value }));
  }
}

export class Counter<L extends string = never> extends ValueInstrument<L> {
  readonly type = 'counter';
  inc(by?: number): void;
  inc(labels: LabelValues<L>, by?: number): void;
  inc(a?: number | LabelValues<L>, b?: number): void {
    const [labels, by] = args(a, b, 1);
    if (!(by >= 0)) throw invalidMetric(this.name, `a counter only goes up (inc by ${by})`);
    this.stateOf(labels).value += by;
  }
}

export class Gauge<L extends string = never> extends ValueInstrument<L> {
  readonly type = 'gauge';
  set(value: number): void;
  set(labels: LabelValues<L>, value: number): void;
  set(a: number | LabelValues<L>, b?: number): void {
    const [labels, value] = args(a, b, Number.NaN);
    this.stateOf(labels).value = value;
  }
  inc(by?: number): void;
  inc(labels: LabelValues<L>, by?: number): void;
  inc(a?: number | LabelValues<L>, b?: number): void {
    const [labels, by] = args(a, b, 1);
    this.stateOf(labels).value += by;
  }
}

export interface HistogramOptions<L extends string> extends InstrumentOptions<L> {
  /** Upper bounds, strictly increasing and finite; the `+Inf` bucket is always added. */
  buckets: readonly number[];
}

interface HistogramState {
  /** Observations per bucket (not cumulative), one more than the bounds for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Instrument<L, HistogramState> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(options: HistogramOptions<L>) {
    super(options, ['le']);
    const { buckets } = options;
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw invalidMetric(options.name, `buckets [${buckets.join(', ')}] must be finite and strictly increasing`);
    }
    this.buckets = [...buckets];
  }

  protected initial(): HistogramState {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }

  observe(value: number): void;
  observe(labels: LabelValues<L>, value: number): void;
  observe(a: number | LabelValues<L>, b?: number): void {
    const [labels, value] = args(a, b, Number.NaN);
    const state = this.stateOf(labels);
    let i = this.buckets.findIndex((bound) => value <= bound);
    if (i === -1) i = this.buckets.length;
    state.counts[i]!++;
    state.sum += value;
    state.count++;
  }

  /** docs/facts/prometheus-text-format.md#histograms: cumulative buckets, `+Inf` = count, then sum and count. */
  collect(): Sample[] {
    const samples: Sample[] = [];
    const les = [...this.buckets, Number.POSITIVE_INFINITY].map(formatValue);
    for (const { labels, state } of this.entries()) {
      let cumulative = 0;
      les.forEach((le, i) => {
        cumulative += state.counts[i]!;
        samples.push({ suffix: '_bucket', labels: { ...labels, le }, value: cumulative });
      });
      samples.push({ suffix: '_sum', labels, value: state.sum }, { suffix: '_count', labels, value: state.count });
    }
    return samples;
  }
}
