/**
 * Which devices the CDI specs publish, under which kind and name, with which device nodes. Pure:
 * an observation in, the devices out. The unit and its names come from the hal (naming/device-unit),
 * which the device plugin calls too, so `<kind>=<name>` is what Kata builds from the kubelet.
 */

import {
  BEHIND_VMD_REASON,
  DeviceIdClaims,
  type GpuccError,
  groupIntoUnits,
  isBridge,
  isGpuccError,
  isVfioDriver,
  isVmdDomainAddress,
  type NameAliases,
  type PciAddress,
  type PciDevice,
  unitNaming,
  type VfioDeviceModelSetting,
  type VfioModel,
  vfioDeviceUnit,
} from '@gpucc/hal';
import type { DeviceObservation } from './observe.js';

/** One CDI device: one device-plugin ID. */
export interface PublishedDevice {
  /** CDI kind == device-plugin resource name, e.g. `nvidia.com/pgpu`. */
  kind: string;
  /** CDI device name == device-plugin device ID: the IOMMU group, or the N of `vfioN` (iommufd). */
  name: string;
  deviceType: 'gpu' | 'nvswitch';
  /** The GPU or NVSwitch that names the device: the first of its group in address order. */
  primary: PciAddress;
  /** Every VFIO-bound function the device passes through (its IOMMU group), in address order. */
  functions: PciAddress[];
  iommuGroup: number | undefined;
  /** The VFIO interface it is published with, decided for it alone: its group or its cdev(s). */
  model: VfioModel;
  /** Container paths (== host paths) of its device nodes. */
  nodes: string[];
  /** Group members still on a host driver: a VM cannot open the group until they leave it. */
  blockingMembers: { address: PciAddress; driver: string }[];
}

/** A VFIO-bound GPU or NVSwitch that no spec lists, and why. */
export interface SkippedDevice {
  address: PciAddress;
  reason: string;
  /** True while it only waits for its device node (udev, a slow probe): the next event picks it up. */
  waiting: boolean;
  error?: GpuccError;
}

export interface DeviceSelection {
  devices: PublishedDevice[];
  skipped: SkippedDevice[];
}

const isTarget = (d: PciDevice) => (d.kind === 'gpu' || d.kind === 'nvswitch') && isVfioDriver(d.driver);

/**
 * Every GPU and NVSwitch on a VFIO driver (vfio-pci or a variant such as nvgrace_gpu_vfio_pci), one
 * device per IOMMU group (the hal's device unit). A device is published only when every node it needs
 * exists: a runtime stats each node and fails container creation on a missing one. Each device's
 * interface (group or cdev) is the hal's decision for it under `deviceModel` (`--vfio-device-model`).
 */
export function selectDevices(
  observation: DeviceObservation,
  aliases: NameAliases,
  deviceModel: VfioDeviceModelSetting = 'auto',
): DeviceSelection {
  const { topology } = observation;
  const devices: PublishedDevice[] = [];
  const skipped: SkippedDevice[] = [];
  const claims = new DeviceIdClaims();
  const candidates = topology.devices.filter(isTarget);
  // The device plugin never advertises these, so no spec lists them either
  // (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through).
  for (const d of candidates.filter((c) => isVmdDomainAddress(c.address))) {
    skipped.push({ address: d.address, reason: BEHIND_VMD_REASON, waiting: false });
  }
  for (const targets of groupIntoUnits(candidates.filter((c) => !isVmdDomainAddress(c.address)))) {
    const primary = targets[0]!; // topology.devices is in address order
    try {
      const unit = vfioDeviceUnit(targets, topology, observation.model, deviceModel);
      const missing = [
        ...unit.pendingCdevs.map((address) => `the vfio cdev of ${address}`),
        ...(unit.id === undefined
          ? []
          : unit.nodes.filter((n) => !observation.presentNodes.has(n)).map((n) => `/${n}`)),
      ];
      if (missing.length > 0 || unit.id === undefined) {
        skipped.push({ address: primary.address, reason: `waiting for ${missing.join(', ')}`, waiting: true });
        continue;
      }
      const kind = unitNaming(unit, { pciIds: observation.pciIds, aliases }).cdiKind;
      const conflict = claims.claim(kind, unit);
      if (conflict) throw conflict;
      devices.push({
        kind,
        name: unit.id,
        deviceType: unit.deviceType,
        primary: primary.address,
        functions: unit.members.map((f) => f.address),
        iommuGroup: unit.iommuGroup,
        model: unit.model,
        nodes: unit.nodes.map((n) => `/${n}`),
        blockingMembers: unit.group
          .map((a) => topology.byAddress.get(a))
          .filter(
            (m): m is PciDevice => m !== undefined && !isBridge(m) && m.driver !== undefined && !isVfioDriver(m.driver),
          )
          .map((m) => ({ address: m.address, driver: m.driver! })),
      });
    } catch (error) {
      if (!isGpuccError(error)) throw error;
      skipped.push({ address: primary.address, reason: error.message, waiting: false, error });
    }
  }
  return { devices, skipped };
}
