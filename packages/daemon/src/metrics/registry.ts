import { CONTENT_TYPE, formatFamily, LABEL_NAME, type MetricType, type Sample } from './exposition.js';
import {
  type Collector,
  Counter,
  checkName,
  Gauge,
  Histogram,
  type HistogramOptions,
  type InstrumentOptions,
  invalidMetric,
} from './instruments.js';

/** A collector that threw (or returned samples the format cannot carry) at this scrape. */
export interface CollectFailure {
  name: string;
  error: unknown;
}

export interface Exposition {
  /** Every family that collected, in registration order. */
  text: string;
  /** The families left out of `text`, with why. */
  failures: CollectFailure[];
}

function checkSamples(name: string, samples: readonly Sample[]): void {
  for (const sample of samples) {
    if (typeof sample.value !== 'number')
      throw invalidMetric(name, `sample value ${String(sample.value)} is not a number`);
    for (const label of Object.keys(sample.labels ?? {})) {
      if (!LABEL_NAME.test(label)) throw invalidMetric(name, `sample label name "${label}" is invalid`);
    }
  }
}

/** The families one binary serves on /metrics; each binary has its own (there is no global one). */
export class Registry {
  readonly contentType = CONTENT_TYPE;
  readonly #collectors = new Map<string, Collector>();

  register<C extends Collector>(collector: C): C {
    checkName(collector.name);
    if (this.#collectors.has(collector.name)) throw invalidMetric(collector.name, 'registered twice');
    this.#collectors.set(collector.name, collector);
    return collector;
  }

  get(name: string): Collector | undefined {
    return this.#collectors.get(name);
  }

  counter<L extends string = never>(options: InstrumentOptions<L>): Counter<L> {
    return this.register(new Counter(options));
  }

  gauge<L extends string = never>(options: InstrumentOptions<L>): Gauge<L> {
    return this.register(new Gauge(options));
  }

  histogram<L extends string = never>(options: HistogramOptions<L>): Histogram<L> {
    return this.register(new Histogram(options));
  }

  /** A family computed from live state at each scrape. */
  collect(name: string, help: string, type: MetricType, collect: Collector['collect']): Collector {
    return this.register({ name, help, type, collect });
  }

  /**
   * Every family as the text format. A collector that fails leaves out its own family only: the
   * scrape still answers the others, and the failure is returned for the caller to log.
   */
  async expose(): Promise<Exposition> {
    const collectors = [...this.#collectors.values()];
    const settled = await Promise.allSettled(
      collectors.map(async (c) => {
        const samples = await c.collect();
        checkSamples(c.name, samples);
        return samples;
      }),
    );
    let text = '';
    const failures: CollectFailure[] = [];
    settled.forEach((result, i) => {
      const { name, help, type } = collectors[i]!;
      if (result.status === 'fulfilled') text += formatFamily({ name, help, type, samples: result.value });
      else failures.push({ name, error: result.reason });
    });
    return { text, failures };
  }

  /** The text only, failures left out silently (for tests and tools; the server uses expose()). */
  async metrics(): Promise<string> {
    return (await this.expose()).text;
  }
}
