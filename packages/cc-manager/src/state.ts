import { type HostRoot, readStateFile, type StateFile, writeStateFile } from '@gpucc/hal';
import type { SwitchStep } from './backend/backend.js';

/**
 * The intent record (`var/lib/gpucc/cc-manager.json` under the host root): the knobs cc-manager is
 * about to set on a device, written before the first tool call of a switch and cleared once the
 * device is verified. The tools cannot report a pending mode, and a pending mode becomes active at
 * the next reset of any kind (a reboot too), so this is what `status` shows as pending, and a
 * restart after a crash mid-switch knows which devices may hold knobs it never applied.
 */
export const STATE_FILE = 'var/lib/gpucc/cc-manager.json';

export interface PendingRecord extends SwitchStep {
  /** ISO time the knobs were (about to be) written. */
  since: string;
}

export interface IntentRecord {
  version: 1;
  pending: Record<string, PendingRecord>;
}

const FILE: StateFile = {
  path: STATE_FILE,
  field: 'pending',
  owner: 'cc-manager',
  hint: 'it only records modes set but not yet verified: inspect it, then remove it; the next reconcile re-reads every device',
};

export function readIntentRecord(sysfs: HostRoot): IntentRecord {
  return { version: 1, pending: readStateFile<PendingRecord>(sysfs, FILE) };
}

export async function writeIntentRecord(sysfs: HostRoot, state: IntentRecord): Promise<void> {
  await writeStateFile(sysfs, FILE, state.pending);
}
