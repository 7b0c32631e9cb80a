import { boundDriver, devicePresent, devPath, findDriver } from './effects.js';
import { Tree } from './files.js';
import { PCI_DRIVERS } from './paths.js';
import { readNodeSpec } from './state.js';

/**
 * What no kernel ever leaves in its tree, listed for a simulated node: a device's `driver` link
 * without the driver's link back (or the reverse), a uevent naming another driver, a VFIO-bound
 * device without its group node or a group node with no VFIO device, an NVIDIA-bound GPU without its
 * /proc entry. Crash and concurrency tests assert that this list is empty. Devices under a devnode
 * fault are the tests' to judge and are not checked for group nodes.
 */
export function treeInconsistencies(root: string, options: { ignoreDevnodes?: boolean } = {}): string[] {
  const tree = new Tree(root);
  const node = readNodeSpec(root);
  const problems: string[] = [];
  const vfioGroups = new Set<number>();
  for (const device of node.devices) {
    if (!devicePresent(tree, device.address)) continue;
    const dev = devPath(device);
    const driver = boundDriver(tree, device);
    const uevent = /^DRIVER=(.*)$/m.exec(tree.read(`${dev}/uevent`))?.[1];
    if (uevent !== driver) problems.push(`${device.address}: driver link ${driver}, uevent DRIVER=${uevent}`);
    for (const d of node.drivers) {
      const back = tree.readLink(`${PCI_DRIVERS}/${d.name}/${device.address}`) !== undefined;
      if (back !== (d.name === driver)) {
        problems.push(`${device.address}: driver link ${driver}, ${d.name}'s link back ${back ? 'present' : 'absent'}`);
      }
    }
    const nvidiaProc = tree.exists(`proc/driver/nvidia/gpus/${device.address}`);
    if (nvidiaProc !== (driver === 'nvidia')) {
      problems.push(
        `${device.address}: driver ${driver}, /proc/driver/nvidia entry ${nvidiaProc ? 'present' : 'absent'}`,
      );
    }
    if (driver && findDriver(node, driver)?.vfio && device.iommuGroup !== undefined) vfioGroups.add(device.iommuGroup);
  }
  if (options.ignoreDevnodes) return problems;
  const prefix = node.noiommu ? 'noiommu-' : '';
  const groups = new Set(node.devices.flatMap((d) => (d.iommuGroup === undefined ? [] : [d.iommuGroup])));
  for (const group of groups) {
    const present = tree.exists(`dev/vfio/${prefix}${group}`);
    if (present !== vfioGroups.has(group)) {
      problems.push(
        `IOMMU group ${group}: ${vfioGroups.has(group) ? 'a device on VFIO' : 'no device on VFIO'}, /dev/vfio/${prefix}${group} ${present ? 'present' : 'absent'}`,
      );
    }
  }
  return problems;
}
