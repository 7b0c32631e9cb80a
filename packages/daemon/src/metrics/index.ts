export { createMetrics, type DaemonMetrics, READY_GAUGE } from './daemon-metrics.js';
export { CONTENT_TYPE, type Labels, type MetricFamily, type MetricType, type Sample } from './exposition.js';
export {
  type Collector,
  Counter,
  Gauge,
  Histogram,
  type HistogramOptions,
  type InstrumentOptions,
} from './instruments.js';
export { registerProcessMetrics } from './process-metrics.js';
export { type CollectFailure, type Exposition, Registry } from './registry.js';
