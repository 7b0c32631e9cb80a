import { type HostRoot, type PciAddress, readStateDocument, type StateFile, writeStateFile } from '@gpucc/hal';

/**
 * The crash-safety record (`var/lib/gpucc/vfio-manager.json` under the host root). A bind writes it
 * once before its first sysfs write (the intent of every group about to move, in one write; only
 * when something moves) and once at the end (the results; when something moved or a record
 * changed). An unbind writes it once at the end when it changed. A process killed between any two
 * sysfs writes therefore still knows every device's previous driver on the next start. Every
 * writer holds LOCK_FILE from its read of the state to its last write, and each write merges its
 * own changes into the file as it is on disk then (never a whole copy from an older read).
 */
export const STATE_FILE = 'var/lib/gpucc/vfio-manager.json';

/** One vfio-manager writes sysfs and the state at a time, host-wide (hal acquireHostLock). */
export const LOCK_FILE = 'var/lib/gpucc/vfio-manager.lock';

export interface DeviceRecord {
  /** The driver before gpucc first moved the device; undefined = it was unbound. */
  previousDriver?: string;
  /** The driver_override before gpucc first moved the device; undefined = unset. */
  previousOverride?: string;
  targetDriver: string;
  group?: number;
  /**
   * `binding`: a sequence started and may be half done (also: an unbind timed out and may still
   * complete, so the outcome is unknown); `bound`: converged on the target.
   */
  phase: 'binding' | 'bound';
}

export interface VfioState {
  version: 1;
  devices: Record<string, DeviceRecord>;
  /**
   * GPUs whose NVIDIA unbind lock is about to be or was taken and not yet given back: written before
   * the lock, so a run killed while holding it gives it back on the next start.
   */
  unbindLocks?: string[];
}

export function emptyState(): VfioState {
  return { version: 1, devices: {} };
}

const FILE: StateFile = {
  path: STATE_FILE,
  field: 'devices',
  owner: 'vfio-manager',
  hint: 'it records the previous drivers: inspect it, restore it, or remove it knowing they are then unknown',
  lists: ['unbindLocks'],
};

export function readState(sysfs: HostRoot): VfioState {
  const { records, lists } = readStateDocument<DeviceRecord>(sysfs, FILE);
  const unbindLocks = lists.unbindLocks ?? [];
  return { version: 1, devices: records, ...(unbindLocks.length > 0 ? { unbindLocks } : {}) };
}

/**
 * Writes the changes from `base` (the state as read) to `state` (as changed since) into the file as it
 * is now: a record this process did not change stays as the file has it. (Under LOCK_FILE the file
 * cannot have changed; the merge keeps that true even for a writer that does not hold the lock.)
 */
export async function writeState(sysfs: HostRoot, state: VfioState, base: VfioState): Promise<void> {
  const current = readState(sysfs);
  const devices = { ...current.devices };
  for (const address of new Set([...Object.keys(base.devices), ...Object.keys(state.devices)])) {
    const mine = state.devices[address];
    if (JSON.stringify(mine) === JSON.stringify(base.devices[address])) continue;
    if (mine === undefined) delete devices[address];
    else devices[address] = mine;
  }
  const locks = new Set(current.unbindLocks ?? []);
  for (const address of base.unbindLocks ?? []) if (!state.unbindLocks?.includes(address)) locks.delete(address);
  for (const address of state.unbindLocks ?? []) locks.add(address);
  await writeStateFile(sysfs, FILE, devices, { unbindLocks: [...locks] });
  // What is on disk now is the base of the next write.
  base.devices = structuredClone(devices);
  if (locks.size > 0) base.unbindLocks = [...locks].sort();
  else delete base.unbindLocks;
}

export function recordOf(state: VfioState, address: PciAddress): DeviceRecord | undefined {
  return state.devices[address];
}
