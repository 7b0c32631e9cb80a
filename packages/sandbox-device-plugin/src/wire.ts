import type { Device, ListAndWatchResponse } from '@gpucc/hal/kubelet';
import type { PluginDevice } from './inventory.js';

/** The ListAndWatch message for a resource: every device, in ID order, with its NUMA nodes. */
export function listAndWatchResponse(devices: Iterable<PluginDevice>): ListAndWatchResponse {
  return { devices: [...devices].map(wireDevice) };
}

function wireDevice(device: PluginDevice): Device {
  return {
    ID: device.id,
    health: device.health,
    // Unset topology means "no preference"; a device with a known NUMA node joins Topology Manager alignment.
    ...(device.numaNodes.length ? { topology: { nodes: device.numaNodes.map((ID) => ({ ID })) } } : {}),
  };
}
