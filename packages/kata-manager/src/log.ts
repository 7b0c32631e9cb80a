import type { Logger } from '@gpucc/daemon';
import type { Generated, WriteResult } from './commands.js';
import type { SkippedDevice } from './devices.js';

/**
 * One line per thing a user may need to act on. Events: `pci.problem`, `pci.warning`, `device.skipped`,
 * `device.group-not-viable`, `spec.written`, `spec.removed`, `spec.unchanged` (debug),
 * `spec.refused`, `spec.failed`, `spec.conflict`.
 */
export function logGenerated(logger: Logger, generated: Generated): void {
  for (const problem of generated.observation.topology.problems) {
    logger.warn({ event: 'pci.problem', err: problem }, `skipped an unreadable PCI entry: ${problem.message}`);
  }
  for (const warning of generated.observation.topology.warnings) {
    logger.warn({ event: 'pci.warning', err: warning }, warning.message);
  }
  for (const skipped of generated.selection.skipped) logSkipped(logger, skipped);
  for (const device of generated.selection.devices) {
    if (device.blockingMembers.length === 0) continue;
    const members = device.blockingMembers.map((m) => `${m.address} (${m.driver})`).join(', ');
    logger.warn(
      { event: 'device.group-not-viable', device: device.primary, kind: device.kind, name: device.name, members },
      `${device.kind}=${device.name} is published, but a VM cannot open IOMMU group ${device.iommuGroup} while ${members} stay on a host driver`,
    );
  }
}

function logSkipped(logger: Logger, skipped: SkippedDevice): void {
  const fields = { event: 'device.skipped', device: skipped.address, waiting: skipped.waiting };
  if (skipped.error)
    logger.error({ ...fields, err: skipped.error }, `${skipped.address} is not published: ${skipped.reason}`);
  else logger.warn(fields, `${skipped.address} is not published yet: ${skipped.reason}`);
}

export function logWriteResult(logger: Logger, result: WriteResult): void {
  logGenerated(logger, result.generated);
  const dir = result.plan.dir;
  for (const r of result.report?.results ?? []) {
    const fields = { file: `/${dir}/${r.fileName}`, kind: r.kind, devices: r.devices };
    if (r.outcome === 'written') logger.info({ event: 'spec.written', ...fields }, `wrote ${fields.file}`);
    else if (r.outcome === 'removed') logger.info({ event: 'spec.removed', ...fields }, `removed ${fields.file}`);
    else if (r.outcome === 'unchanged')
      logger.debug({ event: 'spec.unchanged', ...fields }, `${fields.file} is current`);
    else logger.error({ event: `spec.${r.outcome}`, ...fields, err: r.error }, r.error?.message ?? `${r.outcome}`);
  }
  for (const conflict of result.plan.conflicts) {
    logger.error(
      {
        event: 'spec.conflict',
        kind: conflict.kind,
        devices: conflict.devices,
        ours: conflict.ours,
        theirs: conflict.theirs,
      },
      `/${dir}/${conflict.theirs} also declares ${conflict.devices.map((n) => `${conflict.kind}=${n}`).join(', ')}: unresolvable until it is removed`,
    );
  }
}
