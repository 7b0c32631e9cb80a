import { compareDeviceIds } from '@gpucc/hal';
import type { Inventory, PluginDevice } from './inventory.js';

/** Resource name → device ID → device: everything the plugin advertises. */
export type DeviceState = ReadonlyMap<string, ReadonlyMap<string, PluginDevice>>;

/**
 * The next state from the previous one and a fresh inventory. A device seen once stays listed: when
 * it leaves VFIO, loses its device node or leaves the bus, it is kept as Unhealthy (the kubelet then
 * drops it from allocatable at once but keeps its capacity and checkpointed IDs), and it turns
 * Healthy again when it returns with the same ID. Devices are never dropped while the plugin runs.
 */
export function nextDeviceState(previous: DeviceState, inventory: Inventory): DeviceState {
  const listed = new Set(inventory.devices.map((d) => `${d.resourceName}\u0000${d.id}`));
  const next = new Map<string, Map<string, PluginDevice>>();
  for (const [resource, devices] of previous) {
    const kept = new Map<string, PluginDevice>();
    // A device the inventory lists again is replaced below; only the others are marked lost.
    for (const [id, device] of devices)
      kept.set(id, listed.has(`${resource}\u0000${id}`) ? device : lost(device, inventory));
    next.set(resource, kept);
  }
  for (const device of inventory.devices) {
    let devices = next.get(device.resourceName);
    if (devices === undefined) {
      devices = new Map();
      next.set(device.resourceName, devices);
    }
    devices.set(device.id, device);
  }
  return sortState(next);
}

function lost(device: PluginDevice, inventory: Inventory): PluginDevice {
  if (device.health === 'Unhealthy' && device.reason?.startsWith('no longer advertisable')) return device;
  const addresses = new Set(device.functions.map((f) => f.address));
  const skipped = inventory.skipped.find((s) => addresses.has(s.address));
  const why = skipped ? `${skipped.address} ${skipped.reason}` : 'its functions are no longer on the PCI bus';
  return { ...device, health: 'Unhealthy', reason: `no longer advertisable: ${why}` };
}

function sortState(state: Map<string, Map<string, PluginDevice>>): DeviceState {
  const resources = [...state.keys()].sort();
  return new Map(
    resources.map((resource) => {
      const devices = state.get(resource)!;
      const ids = [...devices.keys()].sort(compareDeviceIds);
      return [resource, new Map(ids.map((id) => [id, devices.get(id)!]))];
    }),
  );
}

/** What changed between two states, for logs: devices added, and health flips. */
export interface DeviceChange {
  resourceName: string;
  id: string;
  change: 'added' | 'healthy' | 'unhealthy';
  reason?: string;
}

export function diffDeviceState(before: DeviceState, after: DeviceState): DeviceChange[] {
  const changes: DeviceChange[] = [];
  for (const [resourceName, devices] of after) {
    for (const [id, device] of devices) {
      const old = before.get(resourceName)?.get(id);
      const reason = device.reason === undefined ? {} : { reason: device.reason };
      if (old === undefined) changes.push({ resourceName, id, change: 'added', ...reason });
      else if (old.health !== device.health) {
        changes.push({ resourceName, id, change: device.health === 'Healthy' ? 'healthy' : 'unhealthy', ...reason });
      }
    }
  }
  return changes;
}
