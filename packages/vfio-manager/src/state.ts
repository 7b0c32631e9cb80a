import {
  type PciAddress,
  readStateFile,
  type Sysfs,
  VFIO_MANAGER_STATE,
  VFIO_MANAGER_STATE_FILE,
  type VfioDeviceRecord,
  writeStateFile,
} from '@gpucc/hal';

/**
 * The crash-safety record (`var/lib/gpucc/vfio-manager.json` under the host root). A bind writes it
 * once before its first sysfs write (the intent of every group about to move, in one write; only
 * when something moves) and once at the end (the results; when something moved or a record
 * changed). An unbind writes it once at the end when it changed. A process killed between any two
 * sysfs writes therefore still knows every device's previous driver on the next start.
 */
export const STATE_FILE = VFIO_MANAGER_STATE_FILE;

/** Its format is in the hal, where others read it (gpucc status). */
export type DeviceRecord = VfioDeviceRecord;

export interface VfioState {
  version: 1;
  devices: Record<string, DeviceRecord>;
}

export function emptyState(): VfioState {
  return { version: 1, devices: {} };
}

const FILE = VFIO_MANAGER_STATE;

export function readState(sysfs: Sysfs): VfioState {
  return { version: 1, devices: readStateFile<DeviceRecord>(sysfs, FILE) };
}

export async function writeState(sysfs: Sysfs, state: VfioState): Promise<void> {
  await writeStateFile(sysfs, FILE, state.devices);
}

export function recordOf(state: VfioState, address: PciAddress): DeviceRecord | undefined {
  return state.devices[address];
}
