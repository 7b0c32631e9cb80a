import {
  type HostRoot,
  isBridge,
  isVfioDriver,
  isViableGroupMember,
  noiommuGroupPath,
  type PciAddress,
  type PciDevice,
  vfioCdevPath,
  vfioGroupPath,
} from '@gpucc/hal';
import { unbindLockHeld } from './apply.js';
import { heldBy, type Observation } from './observe.js';
import { type Plan, planWrites } from './plan.js';

export interface DeviceStatus {
  address: PciAddress;
  kind: string;
  id: string;
  /** `subsystem_vendor:subsystem_device`, e.g. `10de:1626` (H100 PCIe); it tells boards of one chip apart. Null when the tree lacks it. */
  subsystemId: string | null;
  driver: string | null;
  driverOverride: string | null;
  iommuGroup: number | null;
  /** The node a VM opens for it, and whether it exists now. */
  deviceNode: string | null;
  deviceNodePresent: boolean;
  /** Every non-bridge member of its group is on a VFIO driver, on pci-stub or unbound (the hal's rule). */
  groupViable: boolean | null;
  /** It is where the desired state wants it (no write planned for it). */
  matchesDesired: boolean;
  previousDriver: string | null;
  /** A GPU on nvidia whose NVIDIA unbind lock is taken: the driver refuses new clients (CUDA) until it is given back. */
  unbindLockHeld: boolean;
  /** Processes with its device node open, e.g. `nvidia-persistenced (pid 1234)`. */
  heldBy: string[];
}

export interface StatusReport {
  vfioModel: string;
  iommuEnabled: boolean;
  desired: 'vfio' | 'none';
  converged: boolean;
  devices: DeviceStatus[];
  /** Functions discovery could not read (identity or binding unreadable): listed, never acted on. */
  unreadable: Array<{ address: string; recorded: boolean; error: Record<string, unknown> }>;
  /** Attributes that could not be read of devices that are listed (numa_node…): left unknown. */
  warnings: Array<Record<string, unknown>>;
}

/** Every NVIDIA function with its binding, group, node and whether it matches the plan's desired state. */
export function statusReport(sysfs: HostRoot, observation: Observation, plan: Plan): StatusReport {
  const { topology, model, state } = observation;
  const pending = new Set<PciAddress>();
  const refused = new Set<PciAddress>();
  for (const group of plan.groups) {
    for (const step of group.steps) {
      if (step.writes.length > 0) pending.add(step.address);
      if (group.refused) refused.add(step.address);
    }
  }
  const viable = (group: number | undefined) => {
    if (group === undefined) return null;
    return (topology.groups.get(group) ?? []).every((a) => {
      const d = topology.byAddress.get(a);
      return d !== undefined && isViableGroupMember(d.driver, isBridge(d));
    });
  };
  const devices = topology.devices
    .filter((d) => d.vendor === 0x10de && !isBridge(d))
    .map((d): DeviceStatus => {
      const node = nodeFor(d, model.model);
      return {
        address: d.address,
        kind: d.kind,
        id: idPair(d.vendor, d.device),
        subsystemId:
          d.subsystemVendor === undefined || d.subsystemDevice === undefined
            ? null
            : idPair(d.subsystemVendor, d.subsystemDevice),
        driver: d.driver ?? null,
        driverOverride: d.driverOverride ?? null,
        iommuGroup: d.iommuGroup ?? null,
        deviceNode: node ? `/${node}` : null,
        deviceNodePresent: node ? sysfs.exists(node) : false,
        groupViable: viable(d.iommuGroup),
        matchesDesired: !pending.has(d.address) && !refused.has(d.address),
        previousDriver: state.devices[d.address]?.previousDriver ?? null,
        unbindLockHeld: d.driver === 'nvidia' && unbindLockHeld(sysfs, d.address),
        heldBy: heldBy(observation, d.address),
      };
    });
  const unreadable = topology.problems
    .filter((p) => typeof p.details.address === 'string')
    .map((p) => {
      const address = String(p.details.address);
      return { address, recorded: state.devices[address] !== undefined, error: p.toJSON() };
    });
  const converged =
    planWrites(plan) === 0 &&
    plan.groups.every((g) => !g.refused) &&
    nodesPresent(devices, plan) &&
    devices.every((d) => !d.unbindLockHeld) &&
    unreadable.every((u) => !u.recorded); // a device of ours that cannot be read cannot be called done
  return {
    vfioModel: model.model,
    iommuEnabled: model.iommuEnabled,
    desired: plan.desired,
    converged,
    devices,
    unreadable,
    warnings: topology.warnings.map((w) => w.toJSON()),
  };
}

function nodesPresent(devices: DeviceStatus[], plan: Plan): boolean {
  if (plan.desired !== 'vfio') return true;
  const targets = new Set(plan.groups.flatMap((g) => g.steps.map((s) => s.address)));
  return devices
    .filter((d) => targets.has(d.address) && d.driver && isVfioDriver(d.driver))
    .every((d) => d.deviceNodePresent);
}

function nodeFor(d: PciDevice, model: string): string | undefined {
  if (!d.driver || !isVfioDriver(d.driver)) return undefined;
  // A kernel with iommufd but without CONFIG_VFIO_DEVICE_CDEV makes no cdev: the group node is the device's.
  if (model === 'iommufd' && d.vfioCdev) return vfioCdevPath(d.vfioCdev.index);
  if (model === 'iommufd' && d.vfioDevice === undefined) return undefined; // not registered yet
  if (d.iommuGroup === undefined) return undefined;
  return model === 'noiommu' ? noiommuGroupPath(d.iommuGroup) : vfioGroupPath(d.iommuGroup);
}

/** `vvvv:dddd` in lower-case hex, as lspci -n prints IDs. */
function idPair(vendor: number, device: number): string {
  return `${vendor.toString(16).padStart(4, '0')}:${device.toString(16).padStart(4, '0')}`;
}
