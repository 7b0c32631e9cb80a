import { GpuccError, type PciAddress, type Sysfs } from '@gpucc/hal';

/**
 * The crash-safety record (`var/lib/gpucc/vfio-manager.json` under the host root). A bind writes it
 * once before its first sysfs write (the intent of every group about to move, in one write; only
 * when something moves) and once at the end (the results; when something moved or a record
 * changed). An unbind writes it once at the end when it changed. A process killed between any two
 * sysfs writes therefore still knows every device's previous driver on the next start.
 */
export const STATE_FILE = 'var/lib/gpucc/vfio-manager.json';

export interface DeviceRecord {
  /** The driver before gpucc first moved the device; undefined = it was unbound. */
  previousDriver?: string;
  /** The driver_override before gpucc first moved the device; undefined = unset. */
  previousOverride?: string;
  targetDriver: string;
  group?: number;
  /** `binding`: a sequence started and may be half done; `bound`: converged on the target. */
  phase: 'binding' | 'bound';
}

export interface VfioState {
  version: 1;
  devices: Record<string, DeviceRecord>;
}

export function emptyState(): VfioState {
  return { version: 1, devices: {} };
}

export function readState(sysfs: Sysfs): VfioState {
  const text = sysfs.readOptional(STATE_FILE);
  if (text === undefined) return emptyState();
  try {
    const parsed = JSON.parse(text) as VfioState;
    if (parsed?.version !== 1 || typeof parsed.devices !== 'object' || parsed.devices === null)
      throw new Error('unexpected shape');
    return parsed;
  } catch (error) {
    throw new GpuccError(
      'ERR_GPUCC_STATE_FILE_INVALID',
      `${sysfs.display(STATE_FILE)} is not a valid vfio-manager state`,
      {
        hint: 'it records the previous drivers: inspect it, restore it, or remove it knowing they are then unknown',
        cause: error,
        details: { path: STATE_FILE },
      },
    );
  }
}

export async function writeState(sysfs: Sysfs, state: VfioState): Promise<void> {
  const sorted = Object.fromEntries(Object.entries(state.devices).sort(([a], [b]) => (a < b ? -1 : 1)));
  await sysfs.writeFileAtomic(STATE_FILE, `${JSON.stringify({ version: 1, devices: sorted }, null, 2)}\n`, 0o644);
}

export function recordOf(state: VfioState, address: PciAddress): DeviceRecord | undefined {
  return state.devices[address];
}
