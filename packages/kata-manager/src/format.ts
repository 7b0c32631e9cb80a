import { table } from '@gpucc/daemon';
import { resultErrors, type WriteResult } from './commands.js';

/** The plan (dry run) or what was done, per file, then devices left out and conflicts, with hints. */
export function formatWriteResult(result: WriteResult): string {
  const { plan, report, generated } = result;
  const dir = `/${plan.dir}`;
  const rows: string[][] = report
    ? report.results.map((r) => [`${dir}/${r.fileName}`, r.kind ?? '-', String(r.devices), r.outcome])
    : plan.actions.map((a) => [
        `${dir}/${a.fileName}`,
        a.kind ?? '-',
        a.action === 'remove' ? '0' : String(a.devices),
        a.action === 'write' ? `write (${a.why})` : a.action,
      ]);
  const out = [
    rows.length
      ? table(['FILE', 'KIND', 'DEVICES', report ? 'OUTCOME' : 'PLAN'], rows)
      : `no VFIO-bound GPU or NVSwitch, and no spec of ours in ${dir}: nothing to ${report ? 'do' : 'plan'}\n`,
  ];
  const devices = generated.selection.devices;
  if (devices.length) {
    out.push(
      `\n${table(
        ['DEVICE', 'FUNCTIONS', 'NODES'],
        devices.map((d) => [`${d.kind}=${d.name}`, d.functions.join(','), d.nodes.join(',')]),
      )}`,
    );
  }
  const notes: string[] = [];
  for (const s of generated.selection.skipped) if (!s.error) notes.push(`not published yet: ${s.address}: ${s.reason}`);
  const errors = resultErrors(result);
  for (const error of errors) notes.push(error.describe());
  if (notes.length) out.push(`\n${[...new Set(notes)].join('\n')}\n`);
  return out.join('');
}
