/**
 * Which devices the CDI specs publish, under which kind and name, with which device nodes. Pure:
 * an observation in, the devices out. The names come from the hal's naming contract, the same
 * functions the device plugin calls, so `<kind>=<name>` is what Kata builds from the kubelet.
 */

import {
  deviceIdFor,
  deviceNodesFor,
  GpuccError,
  hostDeviceNodesOf,
  isBridge,
  isGpuccError,
  isVfioDriver,
  type NameAliases,
  type PciAddress,
  type PciDevice,
  resourceNamingFor,
  vfioCdevPath,
} from '@gpucc/hal';
import { type DeviceObservation, isVfioFunction } from './observe.js';

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
 * Every GPU and NVSwitch on a VFIO driver (vfio-pci or a variant such as nvgrace_gpu_vfio_pci),
 * one device per IOMMU group: functions sharing a group can only go to one VM together, so they
 * collapse into one device carrying all their nodes, named by the first GPU/NVSwitch of the group.
 * A device is published only when every node it needs exists: a runtime stats each node and fails
 * container creation on a missing one.
 */
export function selectDevices(observation: DeviceObservation, aliases: NameAliases): DeviceSelection {
  const { topology } = observation;
  const devices: PublishedDevice[] = [];
  const skipped: SkippedDevice[] = [];

  // Group key: the IOMMU group, or the function itself when it has none.
  const units = new Map<string, PciDevice[]>();
  for (const device of topology.devices) {
    if (!isTarget(device)) continue;
    const key = device.iommuGroup === undefined ? `fn:${device.address}` : `group:${device.iommuGroup}`;
    units.set(key, [...(units.get(key) ?? []), device]);
  }

  for (const targets of units.values()) {
    const primary = targets[0]!; // topology.devices is in address order
    const group = primary.iommuGroup;
    const members = (group === undefined ? [primary.address] : (topology.groups.get(group) ?? [primary.address]))
      .map((a) => topology.byAddress.get(a))
      .filter((d): d is PciDevice => d !== undefined);
    const functions = members.filter(isVfioFunction);
    try {
      const nodes = nodesFor(primary, functions, observation);
      const missing = [
        ...nodes.pending,
        ...nodes.host.filter((n) => !observation.presentNodes.has(n)).map((n) => `/${n}`),
      ];
      if (missing.length > 0) {
        skipped.push({ address: primary.address, reason: `waiting for ${missing.join(', ')}`, waiting: true });
        continue;
      }
      const deviceType = primary.kind as 'gpu' | 'nvswitch';
      const naming = resourceNamingFor({
        deviceType,
        pciDeviceId: primary.device,
        pciIds: observation.pciIds,
        aliases,
      });
      devices.push({
        kind: naming.cdiKind,
        name: nodes.id,
        deviceType,
        primary: primary.address,
        functions: functions.map((f) => f.address),
        iommuGroup: group,
        nodes: nodes.container,
        blockingMembers: members
          .filter((m) => !isBridge(m) && m.driver !== undefined && !isVfioDriver(m.driver))
          .map((m) => ({ address: m.address, driver: m.driver! })),
      });
    } catch (error) {
      if (!isGpuccError(error)) throw error;
      skipped.push({ address: primary.address, reason: error.message, waiting: false, error });
    }
  }
  return { devices, skipped };
}

interface DeviceNodes {
  id: string;
  host: string[];
  container: string[];
  /** What does not exist yet, in words (a cdev the kernel has not created). */
  pending: string[];
}

/**
 * ID and nodes of one device in the host's model: legacy `/dev/vfio/vfio` + `/dev/vfio/<group>`,
 * no-IOMMU `/dev/vfio/vfio` + `/dev/vfio/noiommu-<group>`, iommufd `/dev/vfio/devices/vfio<N>` of
 * every function of the group (never the group node as well: that would break Kata).
 */
function nodesFor(primary: PciDevice, functions: PciDevice[], observation: DeviceObservation): DeviceNodes {
  const { model } = observation;
  if (model.model === 'iommufd') {
    const pending = functions.filter((f) => f.vfioCdev === undefined).map((f) => `the vfio cdev of ${f.address}`);
    if (primary.vfioCdev === undefined) return { id: '', host: [], container: [], pending };
    const id = deviceIdFor({ mode: 'iommufd', vfioCdevIndex: primary.vfioCdev.index });
    const host = functions.flatMap((f) => (f.vfioCdev === undefined ? [] : [vfioCdevPath(f.vfioCdev.index)]));
    return { id, host, container: host.map((h) => `/${h}`), pending };
  }
  if (primary.iommuGroup === undefined) {
    throw new GpuccError('ERR_GPUCC_INVALID_DEVICE_NUMBER', `${primary.address} is on VFIO but has no IOMMU group`, {
      hint: 'VFIO needs an IOMMU group for every device: enable the IOMMU (intel_iommu=on / amd_iommu=on)',
      details: { address: primary.address, model: model.model },
    });
  }
  const id = deviceIdFor({ mode: model.model, iommuGroup: primary.iommuGroup });
  return {
    id,
    host: hostDeviceNodesOf(primary, model.model),
    container: deviceNodesFor(model.model, { group: primary.iommuGroup }),
    pending: [],
  };
}
