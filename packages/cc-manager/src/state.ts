import { GpuccError, type Sysfs } from '@gpucc/hal';
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

export interface CcState {
  version: 1;
  pending: Record<string, PendingRecord>;
}

export function readCcState(sysfs: Sysfs): CcState {
  const text = sysfs.readOptional(STATE_FILE);
  if (text === undefined) return { version: 1, pending: {} };
  try {
    const parsed = JSON.parse(text) as CcState;
    if (parsed?.version !== 1 || typeof parsed.pending !== 'object' || parsed.pending === null) {
      throw new Error('unexpected shape');
    }
    return parsed;
  } catch (error) {
    throw new GpuccError(
      'ERR_GPUCC_STATE_FILE_INVALID',
      `${sysfs.display(STATE_FILE)} is not a valid cc-manager state`,
      {
        hint: 'it only records modes set but not yet verified: inspect it, then remove it; the next reconcile re-reads every device',
        cause: error,
        details: { path: STATE_FILE },
      },
    );
  }
}

export async function writeCcState(sysfs: Sysfs, state: CcState): Promise<void> {
  const pending = Object.fromEntries(Object.entries(state.pending).sort(([a], [b]) => (a < b ? -1 : 1)));
  await sysfs.writeFileAtomic(STATE_FILE, `${JSON.stringify({ version: 1, pending }, null, 2)}\n`, 0o644);
}
