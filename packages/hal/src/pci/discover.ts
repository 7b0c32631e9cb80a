import path from 'node:path';
import { GpuccError, isGpuccError } from '../errors/index.js';
import { type HostRoot, messageOf } from '../fs/index.js';
import { comparePciAddresses, isPciAddress, type PciAddress } from '../types/index.js';
import { PCI_DEVICES_DIR, readPciDevice } from './device.js';
import { badEntry, groupsFromLinks, readIommuState } from './iommu-groups.js';
import { parseGroupNumber } from './parse.js';
import type { PciDevice, PciTopology } from './types.js';

/**
 * Reads every PCI function under `/sys/bus/pci/devices` and the IOMMU groups. A function that cannot
 * be read (its identity or binding) is skipped and reported in `problems`: one bad device never hides
 * the others. One whose descriptive attribute (numa_node…) cannot be read is kept with that attribute
 * unknown and a warning in `warnings`: one bad attribute costs the attribute, not the device.
 */
export function discoverPci(sysfs: HostRoot): PciTopology {
  const problems: GpuccError[] = [];
  const warnings: GpuccError[] = [];
  const addresses: PciAddress[] = [];
  for (const name of sysfs.readdir(PCI_DEVICES_DIR)) {
    if (isPciAddress(name)) addresses.push(name);
    else problems.push(badEntry(sysfs, PCI_DEVICES_DIR, name, 'a PCI address'));
  }
  // Numeric order: a 5-digit VMD domain (10000:) sorts after ffff:, which string order would not do.
  addresses.sort(comparePciAddresses);

  const devices: PciDevice[] = [];
  const members: { address: PciAddress; group: number }[] = [];
  for (const address of addresses) {
    try {
      const device = readPciDevice(sysfs, address, warnings);
      devices.push(device);
      if (device.iommuGroup !== undefined) members.push({ address, group: device.iommuGroup });
    } catch (error) {
      problems.push(asProblem(sysfs, address, error));
      // An unreadable function still belongs to its group: viability checks must see it.
      const group = groupOfUnreadable(sysfs, address);
      if (group !== undefined) members.push({ address, group });
    }
  }

  const iommu = readIommuState(sysfs);
  problems.push(...iommu.problems);
  return {
    devices,
    byAddress: new Map(devices.map((d) => [d.address, d])),
    addresses,
    groups: groupsFromLinks(members),
    iommuEnabled: iommu.enabled,
    problems,
    warnings,
  };
}

function groupOfUnreadable(sysfs: HostRoot, address: PciAddress): number | undefined {
  try {
    const target = sysfs.readlink(`${PCI_DEVICES_DIR}/${address}/iommu_group`);
    return target === undefined ? undefined : parseGroupNumber(path.posix.basename(target));
  } catch {
    return undefined; // already reported as this function's problem
  }
}

/** Every problem names the device it belongs to, so callers can match it to a card or group. */
function asProblem(sysfs: HostRoot, address: PciAddress, error: unknown): GpuccError {
  if (isGpuccError(error)) {
    if (error.details.address === undefined) error.details.address = address;
    return error;
  }
  return new GpuccError('ERR_GPUCC_SYSFS_READ', `cannot read PCI device ${address}: ${messageOf(error)}`, {
    hint: 'check the device directory under the host root',
    cause: error,
    details: { address, path: `${PCI_DEVICES_DIR}/${address}`, root: sysfs.root },
  });
}
