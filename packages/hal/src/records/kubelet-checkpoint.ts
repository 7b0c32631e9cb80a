/**
 * The kubelet device manager's checkpoint (`var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`):
 * which container of which pod holds which device IDs of which resource
 * (docs/facts/real-hosts.md#the-kubelet-checkpoint). Read-only and tolerant: the kubelet owns it.
 */

import type { HostRoot } from '../fs/index.js';
import { DEVICE_PLUGIN_DIR, KUBELET_CHECKPOINT } from '../kubelet/constants.js';

export const KUBELET_CHECKPOINT_PATH = `${DEVICE_PLUGIN_DIR}/${KUBELET_CHECKPOINT}`;

export interface PodDeviceAllocation {
  podUid: string;
  containerName: string;
  resourceName: string;
  deviceIds: string[];
}

export type KubeletCheckpoint =
  | { state: 'absent' }
  | { state: 'invalid'; reason: string }
  | { state: 'read'; allocations: PodDeviceAllocation[]; registered: Record<string, string[]>; bootId?: string };

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** `DeviceIDs` is keyed by NUMA node since v2 (`{"-1": [...]}`); v1 wrote a plain list. */
function deviceIdsOf(value: unknown): string[] {
  if (Array.isArray(value)) return strings(value);
  if (typeof value !== 'object' || value === null) return [];
  return [...new Set(Object.values(value).flatMap(strings))];
}

export function parseKubeletCheckpoint(text: string): KubeletCheckpoint {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { state: 'invalid', reason: `not JSON: ${(error as Error).message}` };
  }
  const data = (parsed as { Data?: unknown } | null)?.Data;
  if (typeof data !== 'object' || data === null) return { state: 'invalid', reason: 'no Data object' };
  const { PodDeviceEntries: entries, RegisteredDevices: registered } = data as Record<string, unknown>;
  const allocations: PodDeviceAllocation[] = [];
  for (const entry of Array.isArray(entries) ? entries : []) {
    if (typeof entry !== 'object' || entry === null) continue;
    const e = entry as Record<string, unknown>;
    if (typeof e.PodUID !== 'string' || typeof e.ResourceName !== 'string') continue;
    allocations.push({
      podUid: e.PodUID,
      containerName: typeof e.ContainerName === 'string' ? e.ContainerName : '',
      resourceName: e.ResourceName,
      deviceIds: deviceIdsOf(e.DeviceIDs),
    });
  }
  const registeredDevices: Record<string, string[]> = {};
  if (typeof registered === 'object' && registered !== null) {
    for (const [resource, ids] of Object.entries(registered)) registeredDevices[resource] = strings(ids);
  }
  const bootId = (parsed as { BootID?: unknown }).BootID;
  return {
    state: 'read',
    allocations,
    registered: registeredDevices,
    ...(typeof bootId === 'string' && bootId !== '' ? { bootId } : {}),
  };
}

export function readKubeletCheckpoint(sysfs: HostRoot): KubeletCheckpoint {
  const text = sysfs.readOptional(KUBELET_CHECKPOINT_PATH);
  return text === undefined ? { state: 'absent' } : parseKubeletCheckpoint(text);
}
