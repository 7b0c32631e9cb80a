/**
 * The files the operands leave under the host root for one another and for `gpucc status`: their
 * paths and formats live here, in the hal, so that a reader never imports the operand that writes
 * them (operands never import each other). Each JSON file is the hal's versioned state file
 * (`{ "version": 1, "<field>": { key: record } }`, see fs/state-file.ts), written atomically.
 */

import { type HostRoot, readStateFile, type StateFile, writeStateFile } from '../fs/index.js';

/** vfio-manager's crash-safety record: each device's previous driver and its binding phase. */
export const VFIO_MANAGER_STATE_FILE = 'var/lib/gpucc/vfio-manager.json';

export interface VfioDeviceRecord {
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

/** vfio-manager's state file as the hal's state-file helpers take it (vfio-manager writes it, others read). */
export const VFIO_MANAGER_STATE: StateFile = {
  path: VFIO_MANAGER_STATE_FILE,
  field: 'devices',
  owner: 'vfio-manager',
  hint: 'it records the previous drivers: inspect it, restore it, or remove it knowing they are then unknown',
  // GPUs whose NVIDIA unbind lock vfio-manager took and has not given back (written before the lock)
  lists: ['unbindLocks'],
};

export function readVfioManagerState(sysfs: HostRoot): Record<string, VfioDeviceRecord> {
  return readStateFile<VfioDeviceRecord>(sysfs, VFIO_MANAGER_STATE);
}

/** cc-manager's readiness marker: present while the node is converged on its CC mode. */
export const CC_MANAGER_READY_MARKER = 'run/nvidia/validations/.cc-manager-ctr-ready';

/**
 * What the device plugin last advertised (`run/gpucc/sandbox-device-plugin.json`, field `devices`,
 * keyed `<resource name>=<device ID>`): written whenever its device state changes, so its health is in
 * a file others can read (the kubelet keeps it in memory only). Under run/: it is runtime state, gone
 * with a reboot as the advertisement is.
 */
export const DEVICE_PLUGIN_STATE_FILE = 'run/gpucc/sandbox-device-plugin.json';

export interface AdvertisedDeviceRecord {
  resourceName: string;
  id: string;
  health: 'Healthy' | 'Unhealthy';
  reason?: string;
  /** The GPUs or NVSwitches it stands for, in address order. */
  functions: string[];
  /** Host paths of its device nodes, absolute. */
  deviceNodes: string[];
}

const DEVICE_PLUGIN: StateFile = {
  path: DEVICE_PLUGIN_STATE_FILE,
  field: 'devices',
  owner: 'sandbox-device-plugin',
  hint: 'it only mirrors what the plugin advertises: remove it, the plugin writes it again at its next scan',
};

export function advertisedKey(resourceName: string, id: string): string {
  return `${resourceName}=${id}`;
}

export function readAdvertisedDevices(sysfs: HostRoot): Record<string, AdvertisedDeviceRecord> {
  return readStateFile<AdvertisedDeviceRecord>(sysfs, DEVICE_PLUGIN);
}

export async function writeAdvertisedDevices(
  sysfs: HostRoot,
  devices: Record<string, AdvertisedDeviceRecord>,
): Promise<void> {
  await writeStateFile(sysfs, DEVICE_PLUGIN, devices);
}
