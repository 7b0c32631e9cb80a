import type { Counter, Gauge, Histogram } from './instruments.js';
import { registerProcessMetrics } from './process-metrics.js';
import { Registry } from './registry.js';

export const READY_GAUGE = 'gpucc_ready';

export interface DaemonMetrics {
  registry: Registry;
  reconcileTotal: Counter<'result'>;
  reconcileDuration: Histogram;
  lastSuccess: Gauge;
  ready: Gauge;
  buildInfo: Gauge<'version' | 'binary'>;
  /** Records one reconcile: counter by result, duration, and the success time. */
  observeReconcile(ok: boolean, seconds: number, at?: Date): void;
}

// A reconcile is a few sysfs reads when converged, seconds when a GPU resets, minutes at worst.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A registry of its own per binary, with process metrics and the common gpucc series. */
export function createMetrics(options: { binary: string; version: string }): DaemonMetrics {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const reconcileTotal = registry.counter({
    name: 'gpucc_reconcile_total',
    help: 'Reconciles run, by result (success or failure).',
    labelNames: ['result'] as const,
  });
  // Both series exist from the start, so rate() and alerts work before the first failure.
  reconcileTotal.inc({ result: 'success' }, 0);
  reconcileTotal.inc({ result: 'failure' }, 0);
  const reconcileDuration = registry.histogram({
    name: 'gpucc_reconcile_duration_seconds',
    help: 'How long one reconcile (observe, plan, apply) took.',
    buckets: DURATION_BUCKETS,
  });
  const lastSuccess = registry.gauge({
    name: 'gpucc_last_reconcile_success_timestamp_seconds',
    help: 'Unix time of the last successful reconcile (0 before the first).',
  });
  const ready = registry.gauge({ name: READY_GAUGE, help: '1 when /readyz answers 200, else 0.' });
  const buildInfo = registry.gauge({
    name: 'gpucc_build_info',
    help: 'Always 1; the labels say which binary and version this is.',
    labelNames: ['version', 'binary'] as const,
  });
  buildInfo.set({ version: options.version, binary: options.binary }, 1);
  return {
    registry,
    reconcileTotal,
    reconcileDuration,
    lastSuccess,
    ready,
    buildInfo,
    observeReconcile(ok, seconds, at = new Date()) {
      reconcileTotal.inc({ result: ok ? 'success' : 'failure' });
      reconcileDuration.observe(seconds);
      if (ok) lastSuccess.set(at.getTime() / 1000);
    },
  };
}
