import type { KubeletState } from './fake-kubelet.js';

/** `gpucc-sim kubelet-status` as a table: allocatable per resource, then the allocations. */
export function formatKubeletState(state: KubeletState): string {
  const lines = [
    `kubelet: ${state.listening ? 'listening on' : 'not listening on'} ${state.socket} (restarts: ${state.restarts})`,
  ];
  const rows = [['RESOURCE', 'ENDPOINT', 'REGISTERED', 'STREAMING', 'CAPACITY', 'ALLOCATABLE', 'REGISTRATIONS']];
  for (const r of Object.values(state.resources)) {
    rows.push([
      r.resourceName,
      r.endpoint ?? '-',
      r.registered ? 'yes' : 'no',
      r.streaming ? 'yes' : 'no',
      String(r.capacity),
      String(r.allocatable),
      String(r.registrations),
    ]);
  }
  if (rows.length === 1) lines.push('no resources registered');
  else {
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows)
      lines.push(
        row
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
  }
  for (const a of state.allocations) lines.push(`allocated: ${a.resourceName} ${a.deviceIds.join(',')} at ${a.at}`);
  for (const r of state.rejected.slice(-5)) lines.push(`refused registration: ${r.resourceName}: ${r.error}`);
  return `${lines.join('\n')}\n`;
}
