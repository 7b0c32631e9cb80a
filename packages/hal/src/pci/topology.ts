import { comparePciAddresses, type PciAddress, slotOf } from '../types/index.js';
import { isNvidia } from './classify.js';
import type { PciDevice, PciTopology } from './types.js';

/**
 * The functions of one card: every function of the same slot (`dddd:bb:dd.*`) and every `consumer:`
 * target of them. Consumer links are only a hint (some kernels link only the audio function), so
 * slot siblings are always listed too. Includes functions that failed to read; [] for an unknown slot.
 */
export function cardFunctions(topology: PciTopology, address: PciAddress): PciAddress[] {
  const slot = slotOf(address);
  const card = new Set<PciAddress>();
  for (const a of topology.addresses) {
    if (slotOf(a) !== slot) continue;
    card.add(a);
    for (const consumer of topology.byAddress.get(a)?.consumers ?? []) card.add(consumer);
  }
  return [...card].sort(comparePciAddresses);
}

/** Members of an IOMMU group, [] when there is no such group. */
export function groupMembers(topology: PciTopology, group: number): PciAddress[] {
  return topology.groups.get(group) ?? [];
}

export function nvidiaDevices(topology: PciTopology): PciDevice[] {
  return topology.devices.filter(isNvidia);
}
