import {
  BEHIND_VMD_REASON,
  compareDeviceIds,
  DeviceIdClaims,
  detectVfioModel,
  discoverPci,
  type GpuccError,
  groupIntoUnits,
  type HostRoot,
  isGpuccError,
  isVfioDriver,
  isViableGroupMember,
  isVmdDomainAddress,
  type NameAliases,
  type PciAddress,
  type PciDevice,
  type PciIdsDb,
  type PciTopology,
  unitNaming,
  type VfioDeviceModelSetting,
  type VfioHostModel,
  type VfioModel,
  vfioDeviceUnit,
} from '@gpucc/hal';
import type { DeviceHealth } from '@gpucc/hal/kubelet';

export type DeviceType = 'gpu' | 'nvswitch';

/** One PCI function of an advertised device. */
export interface DeviceFunction {
  address: PciAddress;
  /** `vendor:device` in hex, e.g. `10de:2330`. */
  pciId: string;
  driver?: string;
  /** N of /dev/vfio/devices/vfioN (iommufd hosts). */
  cdev?: number;
}

/**
 * One device as the kubelet sees it: an IOMMU group (or, on iommufd hosts, the group named by its
 * first GPU's vfio cdev) with the GPUs or NVSwitches in it. Plain data.
 */
export interface PluginDevice {
  /** Device-plugin ID == CDI device name: the group number, or N of vfioN (hal's naming contract). */
  id: string;
  resourceName: string;
  /** CDI kind, always equal to the resource name. */
  cdiKind: string;
  type: DeviceType;
  health: DeviceHealth;
  /** Why the device is Unhealthy. */
  reason?: string;
  /** NUMA nodes of its GPUs/NVSwitches (numa_node ≥ 0); empty = no topology preference. */
  numaNodes: number[];
  iommuGroup?: number;
  /** The VFIO interface it is advertised with, decided for it alone: its group or its cdev(s). */
  model: VfioModel;
  /** The GPUs or NVSwitches of the device, in address order; the first names it. */
  functions: DeviceFunction[];
  /** Every function of the group on a VFIO driver (companions included): what the VM receives. */
  members: PciAddress[];
  /** Absolute paths a container needs, host path == container path (/dev/vfio/vfio, /dev/vfio/12...). */
  deviceNodes: string[];
}

/** A GPU or NVSwitch that is not advertised, and why. */
export interface SkippedDevice {
  address: PciAddress;
  pciId: string;
  type: DeviceType;
  driver?: string;
  reason: string;
}

export interface Inventory {
  /** The host's model (`/dev/iommu` or not, no-IOMMU); each device's own is `PluginDevice.model`. */
  model: VfioModel;
  devices: PluginDevice[];
  skipped: SkippedDevice[];
  /** Functions or names that could not be read or formed; each was skipped, the rest went on. */
  problems: GpuccError[];
}

export interface InventorySettings {
  nvswitches: boolean;
  aliases: NameAliases;
  /** `--vfio-device-model`: group or cdev per device (default auto). */
  deviceModel?: VfioDeviceModelSetting;
}

export interface InventoryInput extends InventorySettings {
  topology: PciTopology;
  model: VfioHostModel;
  pciIds: PciIdsDb | undefined;
  /** Whether a host path (relative to the root) exists: device-node health. */
  exists: (relPath: string) => boolean;
}

/** Reads the host and builds the inventory; every read goes through the HostRoot. */
export function scanInventory(sysfs: HostRoot, settings: InventorySettings, pciIds: PciIdsDb | undefined): Inventory {
  return buildInventory({
    ...settings,
    topology: discoverPci(sysfs),
    model: detectVfioModel(sysfs),
    pciIds,
    exists: (relPath) => sysfs.exists(relPath),
  });
}

const NVIDIA = 0x10de;

/** Why an NVSwitch is not advertised when `--nvswitches` is off. */
export const NVSWITCHES_OPT_IN = 'NVSwitches are left out (--no-nvswitches)';

/** The devices to advertise, from discovered data. Pure apart from the `exists` probe. */
export function buildInventory(input: InventoryInput): Inventory {
  const { topology, model } = input;
  const skipped: SkippedDevice[] = [];
  const problems: GpuccError[] = [...topology.problems, ...topology.warnings];
  const targets: PciDevice[] = [];
  for (const device of topology.devices) {
    const type = targetType(device, input.nvswitches);
    if (type === undefined) {
      if (isNvSwitchFunction(device)) skipped.push(skip(device, 'nvswitch', NVSWITCHES_OPT_IN));
      continue;
    }
    const why = notAdvertisable(device, input);
    if (why !== undefined) {
      skipped.push(skip(device, type, why));
      continue;
    }
    targets.push(device);
  }

  const devices: PluginDevice[] = [];
  const claims = new DeviceIdClaims();
  for (const functions of groupIntoUnits(targets)) {
    try {
      devices.push(deviceOf(functions, input, claims));
    } catch (error) {
      if (!isGpuccError(error)) throw error;
      if (error.details.address === undefined) error.details.address = functions[0]!.address;
      problems.push(error);
    }
  }
  // Plain code-unit order: localeCompare would load ICU collation data at start-up for nothing.
  devices.sort((a, b) => byCodeUnit(a.resourceName, b.resourceName) || compareDeviceIds(a.id, b.id));
  return { model: model.model, devices, skipped, problems };
}

function skip(device: PciDevice, type: DeviceType, reason: string): SkippedDevice {
  return {
    address: device.address,
    pciId: pciIdOf(device),
    type,
    ...(device.driver === undefined ? {} : { driver: device.driver }),
    reason,
  };
}

function isNvSwitchFunction(device: PciDevice): boolean {
  return device.vendor === NVIDIA && device.physfn === undefined && device.kind === 'nvswitch';
}

function targetType(device: PciDevice, nvswitches: boolean): DeviceType | undefined {
  if (device.vendor !== NVIDIA || device.physfn !== undefined) return undefined; // SR-IOV VFs are not passed whole
  if (device.kind === 'gpu') return 'gpu';
  if (device.kind === 'nvswitch' && nvswitches) return 'nvswitch';
  return undefined;
}

function notAdvertisable(device: PciDevice, input: InventoryInput): string | undefined {
  // docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through
  if (isVmdDomainAddress(device.address)) return BEHIND_VMD_REASON;
  if (!isVfioDriver(device.driver)) {
    return device.driver === undefined ? 'bound to no driver' : `on ${device.driver}, not a VFIO driver`;
  }
  if (device.iommuGroup === undefined) return 'no IOMMU group';
  // iommufd required and the kernel has not registered it with VFIO yet: its cdev may still come.
  const registered = device.vfioCdev !== undefined || device.vfioDevice !== undefined;
  if (input.deviceModel === 'iommufd' && input.model.iommufd && !registered) {
    return 'no VFIO cdev (/dev/vfio/devices/vfioN) yet';
  }
  return undefined;
}

/**
 * The hal's device unit of one group in the interface decided for it, with its health: what the
 * kubelet is told. A unit the hal refuses (no cdev where iommufd is required) or whose ID another
 * device holds throws, and is a problem.
 */
function deviceOf(functions: PciDevice[], input: InventoryInput, claims: DeviceIdClaims): PluginDevice {
  const unit = vfioDeviceUnit(functions, input.topology, input.model, input.deviceModel);
  const naming = unitNaming(unit, input);
  const conflict = claims.claim(naming.resourceName, unit);
  if (conflict) throw conflict;
  const pending = unit.pendingCdevs[0];
  const reason =
    unviableMember(unit.group, input.topology) ??
    missingNode(unit.nodes, input.exists) ??
    (pending === undefined ? undefined : `group member ${pending} has no VFIO cdev yet`);
  const numaNodes = [...new Set(functions.map((f) => f.numaNode).filter((n) => n >= 0))].sort((a, b) => a - b);
  return {
    id: unit.id!, // every target here has its group, and its cdev where iommufd is required: notAdvertisable
    resourceName: naming.resourceName,
    cdiKind: naming.cdiKind,
    type: unit.deviceType,
    health: reason === undefined ? 'Healthy' : 'Unhealthy',
    ...(reason === undefined ? {} : { reason }),
    numaNodes,
    ...(unit.iommuGroup === undefined ? {} : { iommuGroup: unit.iommuGroup }),
    model: unit.model,
    functions: functions.map(functionOf),
    members: unit.members.map((m) => m.address),
    deviceNodes: unit.nodes.map((relPath) => `/${relPath}`),
  };
}

function unviableMember(group: PciAddress[], topology: PciTopology): string | undefined {
  for (const address of group) {
    const member = topology.byAddress.get(address);
    if (member === undefined) return `group member ${address} could not be read`;
    if (!isViableGroupMember(member.driver, member.kind === 'bridge')) {
      return `group member ${address} (${pciIdOf(member)}) is on ${member.driver}, so VFIO cannot open the group`;
    }
  }
  return undefined;
}

function missingNode(relPaths: string[], exists: (relPath: string) => boolean): string | undefined {
  const missing = relPaths.find((relPath) => !exists(relPath));
  return missing === undefined ? undefined : `device node /${missing} is missing`;
}

function functionOf(device: PciDevice): DeviceFunction {
  return {
    address: device.address,
    pciId: pciIdOf(device),
    ...(device.driver === undefined ? {} : { driver: device.driver }),
    ...(device.vfioCdev === undefined ? {} : { cdev: device.vfioCdev.index }),
  };
}

function pciIdOf(device: PciDevice): string {
  const hex = (value: number) => value.toString(16).padStart(4, '0');
  return `${hex(device.vendor)}:${hex(device.device)}`;
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
