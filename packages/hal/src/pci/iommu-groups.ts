import { GpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';
import { comparePciAddresses, type PciAddress } from '../types/index.js';
import { parseGroupNumber } from './parse.js';

export const IOMMU_GROUPS_DIR = 'sys/kernel/iommu_groups';

/**
 * Whether the IOMMU is on: the kernel creates `iommu_groups/<N>` only then, so an empty or missing
 * directory means off. One listing per scan; malformed names are reported.
 */
export function readIommuState(sysfs: HostRoot): { enabled: boolean; problems: GpuccError[] } {
  const names = sysfs.readdir(IOMMU_GROUPS_DIR);
  const problems = names
    .filter((name) => parseGroupNumber(name) === undefined)
    .map((name) => badEntry(sysfs, IOMMU_GROUPS_DIR, name, 'an IOMMU group number'));
  return { enabled: names.length > 0, problems };
}

/**
 * Group number → members, from each function's `iommu_group` link. The kernel keeps these links and
 * `iommu_groups/<N>/devices/<BDF>` in step, so this equals listing every group directory, at one
 * readlink per function that discovery does anyway instead of one more readdir per group.
 */
export function groupsFromLinks(members: Iterable<{ address: PciAddress; group: number }>): Map<number, PciAddress[]> {
  const byGroup = new Map<number, PciAddress[]>();
  for (const { address, group } of members) {
    const list = byGroup.get(group);
    if (list) list.push(address);
    else byGroup.set(group, [address]);
  }
  const sorted = [...byGroup.entries()].sort(([a], [b]) => a - b);
  for (const [, list] of sorted) list.sort(comparePciAddresses);
  return new Map(sorted);
}

/** A directory entry gpucc will not use as a name: reported, never joined into a path. */
export function badEntry(sysfs: HostRoot, dir: string, name: string, expected: string): GpuccError {
  const code = expected === 'a PCI address' ? 'ERR_GPUCC_INVALID_PCI_ADDRESS' : 'ERR_GPUCC_MALFORMED_ATTRIBUTE';
  return new GpuccError(code, `entry ${JSON.stringify(name)} in ${sysfs.display(dir)} is not ${expected}; skipped`, {
    hint: 'the kernel never creates such an entry: the host tree is damaged or was written by hand',
    details: { path: `${dir}/${name}`, entry: name },
  });
}
