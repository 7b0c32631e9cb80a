import {
  describeHolder,
  detectVfioModel,
  discoverPci,
  findHolders,
  type HolderScan,
  type HostRoot,
  holdersOf,
  type PciAddress,
  type PciTopology,
  readVfioAliases,
  type VfioAlias,
  type VfioHostModel,
  vfioDevicesInUse,
  vfioModuleFor,
} from '@gpucc/hal';
import { readState, type VfioState } from './state.js';

/** Everything the plan needs, read from the host in one pass. Plain data. */
export interface Observation {
  topology: PciTopology;
  model: VfioHostModel;
  aliases: VfioAlias[];
  /** modalias per address, for the VFIO variant-driver choice. */
  modaliases: ReadonlyMap<PciAddress, string>;
  /** Registered PCI driver names (directory names under bus/pci/drivers). */
  drivers: ReadonlySet<string>;
  /** Whether the NVIDIA driver offers an unbind lock for a GPU (procfs). */
  unbindLocks: ReadonlySet<PciAddress>;
  /**
   * Processes with a GPU's node open (host /proc): an unbind from nvidia under one blocks until it
   * exits (docs/facts/real-hosts.md#an-nvidia-unbind-waits-for-the-last-client), a VM holds a VFIO device.
   */
  holders: HolderScan;
  /** VFIO devices a VM has open (enable >= 1), with their holders or "holder unknown". */
  inUse: ReadonlyMap<PciAddress, string[]>;
  state: VfioState;
}

export function observe(sysfs: HostRoot): Observation {
  const topology = discoverPci(sysfs);
  const modaliases = new Map<PciAddress, string>();
  for (const device of topology.devices) {
    if (device.vendor !== 0x10de) continue;
    const text = sysfs.readOptional(`${device.sysfsPath}/modalias`);
    if (text) modaliases.set(device.address, text.trim());
  }
  const unbindLocks = new Set<PciAddress>();
  for (const device of topology.devices) {
    if (device.driver === 'nvidia' && sysfs.exists(unbindLockPath(device.address))) {
      unbindLocks.add(device.address);
    }
  }
  const holders = findHolders(sysfs);
  return {
    topology,
    model: detectVfioModel(sysfs),
    aliases: readVfioAliases(sysfs),
    modaliases,
    drivers: new Set(sysfs.readdir('sys/bus/pci/drivers')),
    unbindLocks,
    holders,
    inUse: vfioDevicesInUse(sysfs, topology.devices, holders),
    state: readState(sysfs),
  };
}

/** Who holds a device: the processes found with its node open, else a VM's open VFIO device ("holder unknown"). */
export function heldBy(observation: Observation, address: PciAddress): string[] {
  const found = holdersOf(observation.holders, address).map(describeHolder);
  return found.length ? found : (observation.inUse.get(address) ?? []);
}

/** The NVIDIA driver's per-GPU unbind lock (procfs): 1 while taken, refused while a client holds the GPU. */
export function unbindLockPath(address: PciAddress): string {
  return `proc/driver/nvidia/gpus/${address}/unbindLock`;
}

/** The VFIO driver a function should use: the variant from modules.alias for GPUs, vfio-pci otherwise. */
export function targetModuleFor(observation: Observation, address: PciAddress, isPrimary: boolean): string {
  const modalias = observation.modaliases.get(address);
  return isPrimary && modalias ? vfioModuleFor(modalias, observation.aliases) : 'vfio_pci';
}

/** The driver directory name a module registers (vfio_pci → vfio-pci), from what is registered now. */
export function driverNameFor(observation: Observation, module: string): string {
  for (const candidate of [module, module.replaceAll('_', '-'), module.replaceAll('-', '_')]) {
    if (observation.drivers.has(candidate)) return candidate;
  }
  // Not loaded yet: the kernel's vfio-pci registers with a dash; variant drivers keep their module name.
  return module === 'vfio_pci' ? 'vfio-pci' : module;
}
