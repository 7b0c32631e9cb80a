import { table } from '@gpucc/daemon';
import type { CcMode, HostTee } from '@gpucc/hal';
import type { CheckResult, CheckStatus } from './checks.js';
import type { NfdFeatures } from './nfd.js';

export interface DoctorReport {
  mode: CcMode;
  tee: HostTee;
  /** No check failed: the node can run CC workloads in this mode (warnings allowed). */
  ok: boolean;
  summary: Record<CheckStatus, number>;
  checks: CheckResult[];
  features: NfdFeatures;
  /** Host path of the NFD feature file written, when --nfd-features-file was given. */
  nfdFile?: string;
}

export function makeReport(mode: CcMode, tee: HostTee, checks: CheckResult[], features: NfdFeatures): DoctorReport {
  const summary = { pass: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return { mode, tee, ok: summary.fail === 0, summary, checks, features };
}

/** 0 when nothing failed, 1 when the node cannot run CC workloads in the mode asked for. */
export const exitCodeOf = (report: DoctorReport): number => (report.ok ? 0 : 1);

/** STATUS CHECK FINDING FIX, one row per check, then a verdict line. */
export function formatDoctor(report: DoctorReport): string {
  const rows = report.checks.map((c) => [c.status.toUpperCase(), c.id, c.finding, c.fix ?? '-']);
  const { pass, warn, fail } = report.summary;
  const warnings = `${warn} warning${warn === 1 ? '' : 's'}`;
  const verdict = report.ok
    ? `node can run CC workloads in mode ${report.mode} (${pass} passed, ${warnings})`
    : `node cannot run CC workloads in mode ${report.mode}: ${fail} failed, ${warnings}, ${pass} passed`;
  const nfd = report.nfdFile ? [`NFD features written to /${report.nfdFile}`] : [];
  return `${table(['STATUS', 'CHECK', 'FINDING', 'FIX'], rows)}${['', verdict, ...nfd].join('\n')}\n`;
}
