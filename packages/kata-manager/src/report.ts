import { resultErrors, type WriteResult } from './commands.js';

/** `write --format json`: the plan (dry run) or the outcome per file, the devices, and every problem. */
export function writeResultJson(result: WriteResult): Record<string, unknown> {
  const { plan, report, generated } = result;
  const dir = `/${plan.dir}`;
  const errors = resultErrors(result);
  return {
    dir,
    dryRun: report === undefined,
    ok: errors.length === 0,
    specs: report
      ? report.results.map((r) => ({
          file: `${dir}/${r.fileName}`,
          kind: r.kind ?? null,
          devices: r.devices,
          outcome: r.outcome,
        }))
      : plan.actions.map((a) => ({
          file: `${dir}/${a.fileName}`,
          kind: a.kind ?? null,
          devices: a.action === 'remove' ? 0 : a.devices,
          plan: a.action,
          ...(a.action === 'write' || a.action === 'remove' ? { why: a.why } : {}),
        })),
    devices: generated.selection.devices.map((d) => ({
      kind: d.kind,
      name: d.name,
      type: d.deviceType,
      primary: d.primary,
      functions: d.functions,
      iommuGroup: d.iommuGroup ?? null,
      model: d.model,
      nodes: d.nodes,
      ...(d.blockingMembers.length ? { blockingMembers: d.blockingMembers } : {}),
    })),
    skipped: generated.selection.skipped.map((s) => ({ address: s.address, reason: s.reason, waiting: s.waiting })),
    conflicts: plan.conflicts,
    errors: errors.map((e) => e.toJSON()),
  };
}
