import { table } from '@gpucc/daemon';
import type { ApplyReport } from './apply.js';
import type { Plan } from './plan.js';
import type { StatusReport } from './status.js';

export function formatPlan(plan: Plan): string {
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const group of plan.groups) {
    for (const step of group.steps) {
      rows.push([
        String(group.group ?? '-'),
        step.address,
        step.id,
        step.currentDriver ?? '-',
        group.refused ? 'REFUSED' : (step.targetDriver ?? (plan.desired === 'none' ? 'unbound' : '-')),
        String(group.refused ? 0 : step.writes.length),
        step.heldBy ? `${step.reason}; held by ${step.heldBy.join(', ')}` : step.reason,
      ]);
    }
    if (group.refused)
      notes.push(
        `group ${group.group ?? '-'}: ${group.refused.code}: ${group.refused.message}\n  hint: ${group.refused.hint}`,
      );
  }
  const writes = plan.groups.filter((g) => !g.refused).flatMap((g) => g.steps.flatMap((s) => s.writes));
  const out = [table(['GROUP', 'ADDRESS', 'ID', 'DRIVER', 'TARGET', 'WRITES', 'WHY'], rows)];
  if (writes.length)
    out.push(`\nwrites, in order:\n${writes.map((w) => `  ${w.path} <- ${JSON.stringify(w.value)}`).join('\n')}\n`);
  else out.push('\nnothing to write: the devices are already where they should be\n');
  if (notes.length) out.push(`\n${notes.join('\n')}\n`);
  return out.join('');
}

export function formatReport(report: ApplyReport): string {
  const rows = report.results.map((r) => [
    String(r.group ?? '-'),
    r.address,
    r.outcome,
    r.driver ?? '-',
    r.error ? `${r.error.code}: ${r.error.message}` : '',
  ]);
  const hints = [...new Set(report.results.filter((r) => r.error?.hint).map((r) => `  hint: ${r.error!.hint}`))];
  return `${table(['GROUP', 'ADDRESS', 'OUTCOME', 'DRIVER', 'ERROR'], rows)}${hints.length ? `${hints.join('\n')}\n` : ''}`;
}

export function formatStatus(report: StatusReport): string {
  const rows = report.devices.map((d) => [
    d.address,
    d.kind,
    d.id,
    d.driver ?? '-',
    d.iommuGroup === null ? '-' : String(d.iommuGroup),
    d.deviceNode ? `${d.deviceNode}${d.deviceNodePresent ? '' : ' (missing)'}` : '-',
    d.groupViable === null ? '-' : d.groupViable ? 'yes' : 'no',
    d.matchesDesired ? 'yes' : 'no',
  ]);
  const head = `VFIO model ${report.vfioModel}, IOMMU ${report.iommuEnabled ? 'on' : 'off'}, desired ${report.desired}: ${report.converged ? 'converged' : 'NOT converged'}\n`;
  const held = report.devices.filter((d) => d.unbindLockHeld).map((d) => d.address);
  const locks = held.length
    ? `NVIDIA unbind lock held (new CUDA clients refused) on ${held.join(', ')}: any vfio-manager bind or unbind gives it back\n`
    : '';
  const notes = [
    ...report.devices.filter((d) => d.heldBy.length).map((d) => `held: ${d.address} by ${d.heldBy.join(', ')}`),
    ...report.unreadable.map(
      (u) =>
        `unreadable: ${u.address}${u.recorded ? ' (moved by vfio-manager)' : ''}: ${u.error.code}: ${u.error.message}`,
    ),
    ...report.warnings.map((w) => `warning: ${w.code}: ${w.message}`),
  ];
  const tail = notes.length ? `${notes.join('\n')}\n` : '';
  return (
    head + locks + table(['ADDRESS', 'KIND', 'ID', 'DRIVER', 'GROUP', 'NODE', 'VIABLE', 'AS DESIRED'], rows) + tail
  );
}
