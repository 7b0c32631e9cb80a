import { table } from '@gpucc/daemon';
import type { ApplyReport } from './apply.js';
import type { StatusReport } from './commands.js';
import { describeModes, type Plan } from './plan.js';

const TEE_NAMES = {
  'sev-snp': 'AMD SEV-SNP',
  tdx: 'Intel TDX',
  none: 'none (CC modes other than off are not usable here)',
};

export function formatStatus(report: StatusReport): string {
  const rows = report.devices.map((d) => [
    d.address,
    d.kind,
    d.name,
    d.deviceId,
    d.driver ?? '-',
    d.kind === 'gpu' ? (d.ccCapable ? 'yes' : 'no') : '-',
    d.ppcieCapable ? 'yes' : 'no',
    d.error ? 'ERROR' : d.inUseBy && !d.ccMode ? 'in use' : (d.ccMode ?? '-'),
    d.error ? 'ERROR' : d.inUseBy && !d.ppcieMode ? 'in use' : (d.ppcieMode ?? '-'),
    d.pending ? describeModes(d.pending) : '-',
  ]);
  const inUse = report.devices
    .filter((d) => d.inUseBy)
    .map((d) => `  ${d.address}: in use by ${d.inUseBy!.join(', ')} (not queried)`);
  const head = [
    `host TEE: ${TEE_NAMES[report.tee]}`,
    `backend: ${report.backend}${report.canSwitch ? '' : ' (read only)'}`,
    `node mode: ${report.mode}`,
  ].join('\n');
  const errors = report.devices
    .filter((d) => d.error)
    .map((d) => `  ${d.address}: ${String(d.error!.code)}: ${String(d.error!.message)}`);
  return `${head}\n\n${table(['ADDRESS', 'KIND', 'NAME', 'ID', 'DRIVER', 'CC', 'PPCIE', 'CC MODE', 'PPCIE MODE', 'PENDING AFTER RESET'], rows)}${inUse.length ? `\nin use:\n${inUse.join('\n')}\n` : ''}${errors.length ? `\nerrors:\n${errors.join('\n')}\n` : ''}`;
}

export function formatPlan(plan: Plan): string {
  const rows = plan.devices.map((d) => [
    d.address,
    d.kind,
    d.name,
    describeModes(d.current),
    describeModes(d.expect),
    d.decision,
    d.steps.map((s) => `${s.phase === 1 ? '1:' : '2:'}${describeModes(s.step)}`).join(' then ') || '-',
    d.reason,
  ]);
  const out = [
    `plan for mode ${plan.mode}:\n`,
    table(['ADDRESS', 'KIND', 'NAME', 'NOW', 'TARGET', 'DECISION', 'SET + RESET', 'WHY'], rows),
  ];
  if (plan.refusal)
    out.push(`\nrefused: ${plan.refusal.code}: ${plan.refusal.message}\n  hint: ${plan.refusal.hint}\n`);
  return out.join('');
}

export function formatReport(report: ApplyReport): string {
  const rows = report.results.map((r) => [
    r.address,
    r.kind,
    r.name,
    describeModes(r.before),
    r.outcome,
    describeModes(r.after),
    r.error
      ? `${r.error.code}: ${r.error.message}`
      : r.outcome === 'unchanged' || r.outcome === 'switched'
        ? ''
        : r.detail,
  ]);
  const hints = [...new Set(report.results.filter((r) => r.error).map((r) => `  hint: ${r.error!.hint}`))];
  const head = report.refusal
    ? `mode ${report.mode} refused: ${report.refusal.code}: ${report.refusal.message}\n  hint: ${report.refusal.hint}\n\n`
    : `mode ${report.mode}: ${report.ok ? 'every device is in it' : 'NOT every device is in it'}\n\n`;
  return `${head}${table(['ADDRESS', 'KIND', 'NAME', 'BEFORE', 'OUTCOME', 'AFTER', 'ERROR'], rows)}${hints.length ? `${hints.join('\n')}\n` : ''}`;
}
