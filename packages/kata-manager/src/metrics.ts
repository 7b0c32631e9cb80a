import type { DaemonMetrics } from '@gpucc/daemon/runtime';
import type { SpecResult } from './apply.js';
import type { WriteReport } from './commands.js';

export interface SpecMetrics {
  /** Records one reconcile's report. */
  observe(report: WriteReport): void;
}

/**
 * `gpucc_cdi_devices{kind}`: devices each spec publishes now; `gpucc_cdi_spec_updates_total{outcome}`:
 * files written and removed; `gpucc_cdi_problems{type}`: refused or failed specs, conflicts, and
 * devices skipped with an error (0 when every spec is true).
 */
export function registerSpecMetrics(metrics: DaemonMetrics): SpecMetrics {
  let devices = new Map<string, number>();
  const updates = { written: 0, removed: 0 };
  let problems = { refused: 0, failed: 0, conflict: 0, skipped: 0 };
  // Computed from the last report at each scrape, rather than kept in step in instruments.
  const { registry } = metrics;
  registry.collect(
    'gpucc_cdi_devices',
    'Devices published in each CDI spec kata-manager keeps, by kind.',
    'gauge',
    () => [...devices].map(([kind, value]) => ({ labels: { kind }, value })),
  );
  registry.collect('gpucc_cdi_spec_updates_total', 'CDI spec files written or removed, by outcome.', 'counter', () =>
    Object.entries(updates).map(([outcome, value]) => ({ labels: { outcome }, value })),
  );
  registry.collect(
    'gpucc_cdi_problems',
    'Problems in the last reconcile, by type (0 when every spec is true).',
    'gauge',
    () => Object.entries(problems).map(([type, value]) => ({ labels: { type }, value })),
  );
  const count = (results: SpecResult[], outcome: SpecResult['outcome']) =>
    results.filter((r) => r.outcome === outcome).length;
  return {
    observe(report) {
      devices = new Map(
        report.results
          .filter(
            (r) => r.kind !== undefined && r.devices > 0 && (r.outcome === 'written' || r.outcome === 'unchanged'),
          )
          .map((r) => [r.kind!, r.devices]),
      );
      updates.written += count(report.results, 'written');
      updates.removed += count(report.results, 'removed');
      problems = {
        refused: count(report.results, 'refused'),
        failed: count(report.results, 'failed'),
        conflict: report.conflicts.length,
        skipped: report.skipped.filter((s) => s.error).length,
      };
    },
  };
}
