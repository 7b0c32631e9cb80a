/**
 * The published device unit: one VFIO device per IOMMU group. Functions that share a group can only
 * go to one VM together, so the GPUs/NVSwitches of a group collapse into one device, named by the
 * first of them (address order), carrying the nodes of every VFIO-bound function of the group.
 * kata-manager publishes these units as CDI devices and the device plugin advertises them to the
 * kubelet; both build them here, so `<resource name>=<device ID>` and the device nodes agree.
 * Which functions are targets (NVSwitches or not, health, waiting) stays each operand's policy.
 */

import { isVfioDriver } from '../binding/vfio.js';
import { hostDeviceNodesFor, type VfioModel, vfioCdevPath } from '../devnodes/paths.js';
import { GpuccError } from '../errors/index.js';
import { isBridge } from '../pci/classify.js';
import type { PciDevice, PciTopology } from '../pci/types.js';
import type { PciAddress } from '../types/index.js';
import {
  deviceIdFor,
  type NameAliases,
  type NamedDeviceType,
  type ResourceNaming,
  resourceNamingFor,
} from './contract.js';
import type { PciIdsDb } from './pci-ids.js';

export interface VfioDeviceUnit {
  /** Device-plugin ID == CDI device name; undefined on iommufd while the first target has no vfio cdev. */
  id: string | undefined;
  deviceType: NamedDeviceType;
  /** The GPUs or NVSwitches of the unit, in address order; the first names it. */
  targets: PciDevice[];
  iommuGroup: number | undefined;
  /** Every function of the group, readable or not (the target alone where there is no group). */
  group: PciAddress[];
  /** The group's non-bridge functions on a VFIO driver: what the VM receives. */
  members: PciDevice[];
  /** Host paths (relative to the root) of the unit's device nodes; the container path is `/` + it. */
  nodes: string[];
  /** Members whose vfio cdev the kernel has not created yet (iommufd): their nodes are not in `nodes`. */
  pendingCdevs: PciAddress[];
}

/** A function that can sit in a VM's group: not a bridge, bound to a VFIO driver. */
export function isVfioFunction(device: PciDevice): boolean {
  return !isBridge(device) && isVfioDriver(device.driver);
}

/** The targets grouped into units: one list per IOMMU group (a function without a group stands alone). */
export function groupIntoUnits(targets: PciDevice[]): PciDevice[][] {
  const units = new Map<string, PciDevice[]>();
  for (const device of targets) {
    const key = device.iommuGroup === undefined ? `function ${device.address}` : `group ${device.iommuGroup}`;
    const unit = units.get(key);
    if (unit) unit.push(device);
    else units.set(key, [device]);
  }
  return [...units.values()];
}

/**
 * The unit of one group's targets in the host's device-node model: legacy `/dev/vfio/vfio` +
 * `/dev/vfio/<group>`, no-IOMMU `/dev/vfio/vfio` + `/dev/vfio/noiommu-<group>`, iommufd
 * `/dev/vfio/devices/vfio<N>` of every member (never the group node as well: that would break Kata).
 * Throws a GpuccError when a target outside iommufd mode has no IOMMU group.
 */
export function vfioDeviceUnit(targets: PciDevice[], topology: PciTopology, model: VfioModel): VfioDeviceUnit {
  const primary = targets[0]!;
  const group =
    primary.iommuGroup === undefined
      ? [primary.address]
      : (topology.groups.get(primary.iommuGroup) ?? [primary.address]);
  const members = group
    .map((address) => topology.byAddress.get(address))
    .filter((d): d is PciDevice => d !== undefined && isVfioFunction(d));
  const unit = {
    deviceType: primary.kind === 'nvswitch' ? 'nvswitch' : 'gpu',
    targets,
    iommuGroup: primary.iommuGroup,
    group,
    members,
  } as const;
  if (model === 'iommufd') {
    return {
      ...unit,
      id:
        primary.vfioCdev === undefined
          ? undefined
          : deviceIdFor({ mode: model, vfioCdevIndex: primary.vfioCdev.index }),
      nodes: members.flatMap((m) => (m.vfioCdev === undefined ? [] : [vfioCdevPath(m.vfioCdev.index)])),
      pendingCdevs: members.filter((m) => m.vfioCdev === undefined).map((m) => m.address),
    };
  }
  if (primary.iommuGroup === undefined) {
    throw new GpuccError('ERR_GPUCC_INVALID_DEVICE_NUMBER', `${primary.address} is on VFIO but has no IOMMU group`, {
      hint: 'VFIO needs an IOMMU group for every device: enable the IOMMU (intel_iommu=on / amd_iommu=on)',
      details: { address: primary.address, model },
    });
  }
  return {
    ...unit,
    id: deviceIdFor({ mode: model, iommuGroup: primary.iommuGroup }),
    nodes: hostDeviceNodesFor(model, { group: primary.iommuGroup }),
    pendingCdevs: [],
  };
}

/** The unit's resource name and CDI kind (the naming contract), from its first target's PCI device id. */
export function unitNaming(
  unit: VfioDeviceUnit,
  names: { pciIds: PciIdsDb | undefined; aliases: NameAliases | undefined },
): ResourceNaming {
  return resourceNamingFor({
    deviceType: unit.deviceType,
    pciDeviceId: unit.targets[0]!.device,
    pciIds: names.pciIds,
    aliases: names.aliases,
  });
}
