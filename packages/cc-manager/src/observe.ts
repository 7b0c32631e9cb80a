import { detectHostTee, discoverPci, type HostRoot, type HostTee } from '@gpucc/hal';
import type { CcBackend } from './backend/backend.js';
import type { CapabilityTable } from './capability.js';
import { type CcDevice, findCcDevices } from './devices.js';
import type { Observation } from './plan.js';
import { type IntentRecord, readIntentRecord } from './state.js';

/** What sysfs alone tells: host TEE, the devices and their capabilities, what cc-manager left pending. */
export interface HostView {
  tee: HostTee;
  devices: CcDevice[];
  pending: IntentRecord['pending'];
}

export function observeHost(sysfs: HostRoot, table: CapabilityTable): HostView {
  return {
    tee: detectHostTee(sysfs),
    devices: findCcDevices(discoverPci(sysfs), table),
    pending: readIntentRecord(sysfs).pending,
  };
}

/** The host view completed with every device's current modes, read by the backend's tools. */
export async function readModes(host: HostView, backend: CcBackend, signal?: AbortSignal): Promise<Observation> {
  const answers = await backend.query(host.devices, signal);
  return {
    tee: host.tee,
    backend: backend.name,
    canSwitch: backend.canSwitch,
    devices: host.devices.map((d) => {
      const answer = answers.get(d.address);
      const pending = host.pending[d.address];
      return {
        ...d,
        ...(answer && 'modes' in answer ? { modes: answer.modes } : {}),
        ...(answer && 'error' in answer ? { queryError: answer.error } : {}),
        ...(pending ? { pending } : {}),
      };
    }),
  };
}

/**
 * Reads the host into plain data: host TEE, every NVIDIA GPU and NVSwitch with its capabilities and
 * driver (sysfs), their current modes (the backend's tools), and what cc-manager left pending.
 */
export async function observe(
  sysfs: HostRoot,
  backend: CcBackend,
  table: CapabilityTable,
  signal?: AbortSignal,
): Promise<Observation> {
  return readModes(observeHost(sysfs, table), backend, signal);
}
