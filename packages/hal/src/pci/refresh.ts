import path from 'node:path';
import { isVfioDriver } from '../binding/vfio.js';
import type { HostRoot } from '../fs/index.js';
import { isPciAddress, type PciAddress } from '../types/index.js';
import { readPciDevice } from './device.js';
import { parseGroupNumber, parseVfioDevName } from './parse.js';
import type { PciDevice, PciTopology } from './types.js';

/** What change events said since a topology was read. */
export interface PciChanges {
  /** Host paths of device nodes that appeared or vanished: `dev/vfio/<group>`, `dev/vfio/devices/vfio<N>`... */
  nodes: Iterable<string>;
  /** Functions whose driver changed (their entry in a driver's directory came or went). */
  functions: Iterable<PciAddress>;
}

const CONTAINER = /^dev\/vfio\/vfio$/;
const GROUP_NODE = /^dev\/vfio\/(?:noiommu-)?(\d+)$/;
const CDEV_NODE = /^dev\/vfio\/devices\/((?:noiommu-)?vfio\d+)$/;
const VFIO_DEV_CLASS = 'sys/class/vfio-dev';

/**
 * The topology `discoverPci` would return now, when the only changes since `previous` are the ones
 * given: `previous` with just the functions those changes concern read again (a group node names its
 * group's members, a cdev the function that owns it, a driver event its function). The event path
 * of a long-running operand: one device's reads instead of the whole bus's. Undefined where that
 * cannot be relied on and a full `discoverPci` is needed: a node path it does not know, a function
 * that was not read before (new on the bus, or unreadable then) or cannot be read now (gone,
 * damaged), a function whose IOMMU group changed, or a node that exists while no function on a VFIO
 * driver accounts for it (a bind the events did not name). The periodic full pass stays the source
 * of truth; this is only a faster way to its answer.
 */
export function refreshPci(sysfs: HostRoot, previous: PciTopology, changes: PciChanges): PciTopology | undefined {
  const nodes = [...changes.nodes];
  const addresses = new Set(changes.functions);
  for (const node of nodes) {
    const owners = nodeOwners(sysfs, previous, node);
    if (owners === undefined) return undefined;
    for (const address of owners) addresses.add(address);
  }
  const fresh = new Map<PciAddress, PciDevice>();
  for (const address of addresses) {
    const before = previous.byAddress.get(address);
    if (before === undefined) return undefined;
    let device: PciDevice;
    try {
      device = readPciDevice(sysfs, address);
    } catch {
      return undefined; // the full pass reports it as a problem
    }
    if (device.iommuGroup !== before.iommuGroup) return undefined; // groups are rebuilt by a full pass
    if (device.unknownAttributes) return undefined; // the full pass reports its warnings
    fresh.set(address, device);
  }
  let next = previous;
  if (fresh.size > 0) {
    const devices = previous.devices.map((d) => fresh.get(d.address) ?? d);
    next = { ...previous, devices, byAddress: new Map(devices.map((d) => [d.address, d])) };
  }
  for (const node of nodes) if (sysfs.exists(node) && !accountedFor(next, node)) return undefined;
  return next;
}

/**
 * The functions whose state a VFIO device node reflects: none for the container, the members of
 * the group for a group node, the function that owns a cdev (as the topology knows it, and as
 * `sys/class/vfio-dev/<name>` says now, for a cdev the topology has not seen). Undefined for a path
 * that is not a VFIO node.
 */
function nodeOwners(sysfs: HostRoot, topology: PciTopology, node: string): PciAddress[] | undefined {
  if (CONTAINER.test(node)) return [];
  const group = GROUP_NODE.exec(node);
  if (group) {
    const number = parseGroupNumber(group[1]!);
    return number === undefined ? undefined : (topology.groups.get(number) ?? []);
  }
  const cdev = CDEV_NODE.exec(node);
  if (!cdev) return undefined;
  const name = cdev[1]!;
  const index = parseVfioDevName(name);
  if (index === undefined) return undefined;
  const owners = topology.devices.filter((d) => d.vfioCdev?.index === index).map((d) => d.address);
  const owner = cdevOwner(sysfs, name) ?? cdevOwner(sysfs, `vfio${index}`);
  return owner === undefined ? owners : [...owners, owner];
}

/** `sys/class/vfio-dev/vfio3` → `../../devices/…/0000:01:00.0/vfio-dev/vfio3` → `0000:01:00.0`. */
function cdevOwner(sysfs: HostRoot, name: string): PciAddress | undefined {
  const target = sysfs.readlink(`${VFIO_DEV_CLASS}/${name}`);
  if (target === undefined) return undefined;
  const parts = target.split(path.posix.sep);
  const at = parts.lastIndexOf('vfio-dev');
  const address = at > 0 ? parts[at - 1] : undefined;
  return isPciAddress(address) ? address : undefined;
}

/** Whether a node that exists is one a function on a VFIO driver brings. The container always is. */
function accountedFor(topology: PciTopology, node: string): boolean {
  if (CONTAINER.test(node)) return true;
  const group = GROUP_NODE.exec(node);
  if (group) {
    const members = topology.groups.get(Number(group[1])) ?? [];
    return members.some((address) => isVfioDriver(topology.byAddress.get(address)?.driver));
  }
  const index = parseVfioDevName(path.posix.basename(node));
  return topology.devices.some((d) => d.vfioCdev?.index === index && isVfioDriver(d.driver));
}
