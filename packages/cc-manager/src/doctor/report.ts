import { table } from '@gpucc/daemon';
import type { CcMode, HostFacts, HostTee, LockdownState } from '@gpucc/hal';
import type { CheckResult, CheckStatus } from './checks.js';
import type { NfdFeatures } from './nfd.js';
import type { DoctorObservation } from './observe.js';

/** The host as the report shows it: CPU, kernel, OS and lockdown (docs/facts/real-hosts.md#cpu-flags-for-sev-snp-and-tdx). */
export interface ReportedHost {
  cpu?: { vendor: string; model: string; flags: { sevSnp: boolean; tdx: boolean } };
  kernel: string;
  os?: string;
  /** `none`, `integrity`, `confidentiality`, `not-built` or `unknown`. */
  lockdown: string;
  /** systeminformation (the host root is this machine's `/`) or the host root's files. */
  source: HostFacts['source'];
}

export interface DoctorReport {
  mode: CcMode;
  tee: HostTee;
  host: ReportedHost;
  /** No check failed: the node can run CC workloads in this mode (warnings allowed). */
  ok: boolean;
  summary: Record<CheckStatus, number>;
  checks: CheckResult[];
  features: NfdFeatures;
  /** Host path of the NFD feature file written, when --nfd-features-file was given. */
  nfdFile?: string;
}

/** `integrity`, `not-built`, `unknown` (unreadable, malformed or no securityfs): one word, also an NFD value. */
export function lockdownWord(lockdown: LockdownState): string {
  if (lockdown.state === 'active') return lockdown.mode;
  return lockdown.state === 'not-built' ? 'not-built' : 'unknown';
}

export function reportedHost(o: Pick<DoctorObservation, 'host' | 'lockdown'>): ReportedHost {
  const { cpu, kernel, os, source } = o.host;
  return {
    ...(cpu ? { cpu: { vendor: cpu.vendorName, model: cpu.model, flags: { sevSnp: cpu.sevSnp, tdx: cpu.tdx } } } : {}),
    kernel,
    ...(os ? { os } : {}),
    lockdown: lockdownWord(o.lockdown),
    source,
  };
}

export function makeReport(
  mode: CcMode,
  o: Pick<DoctorObservation, 'tee' | 'host' | 'lockdown'>,
  checks: CheckResult[],
  features: NfdFeatures,
): DoctorReport {
  const summary = { pass: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return { mode, tee: o.tee, host: reportedHost(o), ok: summary.fail === 0, summary, checks, features };
}

/** `host: AMD EPYC 9654 (AuthenticAMD, flags sev_snp); kernel 6.17.0-1007-nvidia; Ubuntu 25.10; lockdown none`. */
function hostLine(host: ReportedHost): string {
  const flags = host.cpu
    ? [...(host.cpu.flags.sevSnp ? ['sev_snp'] : []), ...(host.cpu.flags.tdx ? ['tdx_host_platform'] : [])]
    : [];
  const cpu = host.cpu
    ? `${host.cpu.model || '?'} (${[host.cpu.vendor || '?', flags.length ? `flags ${flags.join(' ')}` : 'no TEE flag'].join(', ')})`
    : 'CPU unknown';
  return `host: ${[cpu, `kernel ${host.kernel}`, host.os ?? 'OS unknown', `lockdown ${host.lockdown}`].join('; ')}`;
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
  return `${hostLine(report.host)}\n\n${table(['STATUS', 'CHECK', 'FINDING', 'FIX'], rows)}${['', verdict, ...nfd].join('\n')}\n`;
}
