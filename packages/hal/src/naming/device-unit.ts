/**
 * The published device unit: one VFIO device per IOMMU group. Functions that share a group can only
 * go to one VM together, so the GPUs/NVSwitches of a group collapse into one device, named by the
 * first of them (address order), carrying the nodes of every VFIO-bound function of the group.
 * kata-manager publishes these units as CDI devices and the device plugin advertises them to the
 * kubelet; both build them here, so `<resource name>=<device ID>` and the device nodes agree.
 * Which functions are targets (NVSwitches or not, health, waiting) stays each operand's policy.
 */

import { isVfioDriver } from '../binding/vfio.js';
import type { VfioDeviceModelSetting, VfioHostModel } from '../devnodes/model.js';
import { hostDeviceNodesFor, IOMMUFD_PATH, type VfioModel, vfioCdevPath } from '../devnodes/paths.js';
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
  /** The interface this unit is published with, decided for it alone (`deviceModelOf`). */
  model: VfioModel;
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
 * Which interface one unit is published with (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device).
 * `/dev/iommu` says only that the kernel has iommufd; whether it made a cdev is a fact of each device
 * (its `vfio-dev/vfio<N>/dev`), so the decision is per unit, over every VFIO member of its group:
 * - `auto`: iommufd when the host has `/dev/iommu` and every member has its cdev, else legacy (the
 *   group node covers every member, so a group with one member short of a cdev still goes whole);
 * - `legacy`: always the group;
 * - `iommufd`: the cdev; throws ERR_GPUCC_VFIO_CDEV_UNAVAILABLE where the host has no `/dev/iommu`
 *   or a member is registered with VFIO without a cdev (a kernel without CONFIG_VFIO_DEVICE_CDEV).
 *   A member not registered yet is waited for (`pendingCdevs`).
 * A no-IOMMU host has its own nodes, whatever the setting.
 */
export function deviceModelOf(
  primary: PciDevice,
  members: PciDevice[],
  host: Pick<VfioHostModel, 'model' | 'iommufd'>,
  setting: VfioDeviceModelSetting,
): VfioModel {
  if (host.model === 'noiommu') return 'noiommu';
  if (setting === 'legacy') return 'legacy';
  const cdevs = members.length > 0 && members.every((m) => m.vfioCdev !== undefined);
  if (setting === 'auto') return host.iommufd && cdevs ? 'iommufd' : 'legacy';
  if (!host.iommufd) {
    throw cdevUnavailable(
      primary,
      `${primary.address}: --vfio-device-model iommufd, but the host has no /${IOMMUFD_PATH}`,
      'the kernel has no iommufd (CONFIG_IOMMUFD) or the iommufd module is not loaded: load it, or use --vfio-device-model auto or legacy',
    );
  }
  const withoutCdev = members.filter((m) => m.vfioCdev === undefined && m.vfioDevice !== undefined);
  if (withoutCdev.length > 0) {
    const names = withoutCdev.map((m) => `${m.address} (${m.vfioDevice!.name})`).join(', ');
    throw cdevUnavailable(
      primary,
      `${primary.address}: --vfio-device-model iommufd, but ${names} ${withoutCdev.length === 1 ? 'has' : 'have'} no VFIO cdev (no vfio-dev/vfio<N>/dev, no /dev/vfio/devices/vfio<N>)`,
      'the kernel lacks CONFIG_VFIO_DEVICE_CDEV (it has iommufd but makes no per-device VFIO cdevs): boot a kernel with it, or use --vfio-device-model auto or legacy for the group nodes',
    );
  }
  return 'iommufd';
}

function cdevUnavailable(primary: PciDevice, message: string, hint: string): GpuccError {
  return new GpuccError('ERR_GPUCC_VFIO_CDEV_UNAVAILABLE', message, {
    hint,
    details: { address: primary.address, setting: 'iommufd' },
  });
}

/**
 * The unit of one group's targets, in the interface decided for it (`deviceModelOf`): legacy
 * `/dev/vfio/vfio` + `/dev/vfio/<group>`, no-IOMMU `/dev/vfio/vfio` + `/dev/vfio/noiommu-<group>`,
 * iommufd `/dev/vfio/devices/vfio<N>` of every member (never the group node as well: that would break Kata).
 * Throws a GpuccError when a target outside iommufd mode has no IOMMU group, or iommufd is required and
 * the unit has no cdev.
 */
export function vfioDeviceUnit(
  targets: PciDevice[],
  topology: PciTopology,
  host: Pick<VfioHostModel, 'model' | 'iommufd'>,
  setting: VfioDeviceModelSetting = 'auto',
): VfioDeviceUnit {
  const primary = targets[0]!;
  const group =
    primary.iommuGroup === undefined
      ? [primary.address]
      : (topology.groups.get(primary.iommuGroup) ?? [primary.address]);
  const members = group
    .map((address) => topology.byAddress.get(address))
    .filter((d): d is PciDevice => d !== undefined && isVfioFunction(d));
  const model = deviceModelOf(primary, members, host, setting);
  const unit = {
    model,
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

/**
 * Where devices of one resource are decided apart (`auto` on a host where some have cdevs), a group
 * number and a cdev number can be equal: two devices with one ID, which neither the kubelet nor a
 * CDI spec can tell apart. Keeps the first (address order) and refuses the later one.
 */
export class DeviceIdClaims {
  private readonly owners = new Map<string, VfioDeviceUnit>();

  /** Undefined when the unit may take its ID; else the error that refuses it. */
  claim(resource: string, unit: VfioDeviceUnit): GpuccError | undefined {
    if (unit.id === undefined) return undefined;
    const key = `${resource}=${unit.id}`;
    const owner = this.owners.get(key);
    if (owner === undefined) {
      this.owners.set(key, unit);
      return undefined;
    }
    const what = (u: VfioDeviceUnit) =>
      `${u.targets[0]!.address} (${u.model === 'iommufd' ? `vfio cdev ${u.id}` : `IOMMU group ${u.id}`})`;
    return new GpuccError(
      'ERR_GPUCC_DEVICE_ID_CONFLICT',
      `${key}: ${what(unit)} would share its device ID with ${what(owner)}`,
      {
        hint: 'some devices have VFIO cdevs and some do not, so auto names them differently: set --vfio-device-model legacy (group numbers for all) or iommufd',
        details: { address: unit.targets[0]!.address, id: unit.id, owner: owner.targets[0]!.address },
      },
    );
  }
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
