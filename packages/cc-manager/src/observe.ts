import { detectHostTee, discoverPci, type HostRoot, type HostTee, type PciAddress, vfioDevicesInUse } from '@gpucc/hal';
import type { CcBackend, DeviceModes } from './backend/backend.js';
import type { CapabilityTable } from './capability.js';
import { type CcDevice, findCcDevices } from './devices.js';
import type { Observation } from './plan.js';
import { type IntentRecord, readIntentRecord } from './state.js';

/** What sysfs alone tells: host TEE, the devices and their capabilities, what cc-manager left pending. */
export interface HostView {
  tee: HostTee;
  devices: CcDevice[];
  pending: IntentRecord['pending'];
  /** Devices a VM holds (never queried, switched or reset), with their holders. */
  held: ReadonlyMap<PciAddress, string[]>;
}

export function observeHost(sysfs: HostRoot, table: CapabilityTable): HostView {
  const devices = findCcDevices(discoverPci(sysfs), table);
  return {
    tee: detectHostTee(sysfs),
    devices,
    pending: readIntentRecord(sysfs).pending,
    held: vfioDevicesInUse(sysfs, devices), // never queried: a query maps BAR0 under the guest
  };
}

/** The host view completed with every device's current modes, read by the backend's tools. */
export async function readModes(
  host: HostView,
  backend: CcBackend,
  signal?: AbortSignal,
  lastModes: ReadonlyMap<PciAddress, DeviceModes> = new Map(),
): Promise<Observation> {
  // A device a VM holds is never queried: it keeps the modes last read for it.
  const answers = await backend.query(
    host.devices.filter((d) => !host.held.has(d.address)),
    signal,
  );
  return {
    tee: host.tee,
    backend: backend.name,
    canSwitch: backend.canSwitch,
    devices: host.devices.map((d) => {
      const answer = answers.get(d.address);
      const pending = host.pending[d.address];
      const heldBy = host.held.get(d.address);
      const last = heldBy ? lastModes.get(d.address) : undefined;
      return {
        ...d,
        ...(heldBy ? { heldBy } : {}),
        ...(last ? { modes: last } : {}),
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
