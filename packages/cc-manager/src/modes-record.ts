import type { Logger } from '@gpucc/daemon';
import { type CcMode, type CcModesRecord, type HostRoot, messageOf, writeCcModes } from '@gpucc/hal';
import type { DeviceModes } from './backend/backend.js';

/**
 * Keeps the device part of the hal's CC mode record (`var/lib/gpucc/cc-mode.json`) true: the modes
 * cc-manager last read or verified, for `gpucc status`, which never runs a CC tool itself. Only known
 * modes are recorded; a device whose query failed keeps its previous entry. The hal's writer keeps the
 * node part the reconcile writes. A failed write costs a log line, never a switch.
 */
export async function recordModes(
  sysfs: HostRoot,
  logger: Logger,
  modes: ReadonlyMap<string, DeviceModes>,
  desired: CcMode,
  present?: readonly string[],
): Promise<void> {
  try {
    await writeCcModes(sysfs, (records) => {
      // A full observation also forgets devices that left the node.
      if (present) for (const address of Object.keys(records)) if (!present.includes(address)) delete records[address];
      for (const [address, m] of modes) {
        const record: CcModesRecord = { desired };
        if (m.cc !== undefined) record.cc = m.cc;
        if (m.ppcie !== undefined) record.ppcie = m.ppcie;
        records[address] = record;
      }
      return records;
    });
  } catch (error) {
    logger.warn({ event: 'cc.modes.record-failed', err: error }, `could not record the CC modes: ${messageOf(error)}`);
  }
}
