import {
  checkPciIdsFile,
  detectHostTee,
  detectVfioModel,
  discoverPci,
  findPciIds,
  type HostFacts,
  type HostRoot,
  type HostTee,
  isGpuccError,
  isModuleLoaded,
  kvmTeeParameters,
  type LockdownState,
  loadPciIdsFile,
  type PciAddress,
  readLockdown,
  readVfioAliases,
  registeredDriverName,
  rootedHostFacts,
  type VfioModel,
  vfioModuleFor,
} from '@gpucc/hal';
import type { CapabilityTable } from '../capability.js';
import { type CcDevice, findCcDevices } from '../devices.js';
import { DEVICE_PLUGIN_DIR } from '../operands.js';
import type { FirmwareObservation } from './firmware.js';

/** A GPU or NVSwitch as the doctor sees it: its CC capability, driver, IOMMU group and VFIO driver. */
export interface DoctorDevice extends CcDevice {
  iommuGroup?: number;
  /** The VFIO module modules.alias names for it: vfio_pci, or a variant such as nvgrace_gpu_vfio_pci. */
  vfioModule: string;
}

/** Where the CDI spec directories stand (docs/facts/cdi.md#spec-directories): the first existing one, else none. */
export interface CdiDirs {
  existing: string[];
}

/** Everything the checks judge, read once through the HostRoot. Plain data: the checks are pure over it. */
export interface DoctorObservation {
  /** CPU, kernel and OS (docs/facts/real-hosts.md#cpu-flags-for-sev-snp-and-tdx). */
  host: HostFacts;
  tee: HostTee;
  /** The KVM TEE parameters: true = Y, false = N (the kernel supports it, off), absent = no such parameter. */
  kvm: { sevSnp?: boolean; tdx?: boolean };
  lockdown: LockdownState;
  iommu: {
    groups: number;
    /** IOMMU units in sys/class/iommu (dmar0, ivhd0, …). */
    units: string[];
    noiommuParameter: boolean;
    model: VfioModel;
  };
  /** proc/cmdline split on spaces; undefined when /proc is not mounted under the host root. */
  cmdline?: string[];
  vfio: { loaded: boolean; driver?: string };
  /** VFIO variant modules the devices need (never vfio_pci), with whether each is loaded. */
  variants: Array<{ module: string; loaded: boolean; registered: boolean; devices: PciAddress[] }>;
  devices: DoctorDevice[];
  /** Host path of pci.ids, when one is installed. */
  pciIds?: string;
  /**
   * The `--pci-ids` fallback (a file of this machine or container), when one was given: readable, with
   * the NVIDIA device names it holds (counted only when the host has no pci.ids), or why not.
   */
  pciIdsFallback?:
    | { file: string; readable: true; nvidiaNames?: number }
    | { file: string; readable: false; error: string };
  /** What gpu-admin-tools says of the firmware (doctor() probes it; absent: not probed). */
  firmware?: FirmwareObservation;
  devicePluginDir: boolean;
  cdi: CdiDirs;
}

export const CDI_DIRS = ['var/run/cdi', 'etc/cdi'] as const;
const VFIO_MODULE = 'vfio_pci';

export interface ObserveOptions {
  /** `--pci-ids`: a pci.ids of this machine or container, used by the operands when the host has none. */
  pciIdsFallback?: string;
  /** The host facts, when read already (doctor() reads them through systeminformation on `/`). */
  host?: HostFacts;
}

export function observeDoctor(
  sysfs: HostRoot,
  table: CapabilityTable,
  options: ObserveOptions = {},
): DoctorObservation {
  const topology = discoverPci(sysfs);
  const aliases = readVfioAliases(sysfs);
  const devices: DoctorDevice[] = findCcDevices(topology, table).map((d) => {
    const pci = topology.byAddress.get(d.address);
    const modalias = pci ? sysfs.readOptional(`${pci.sysfsPath}/modalias`) : undefined;
    return {
      ...d,
      ...(pci?.iommuGroup === undefined ? {} : { iommuGroup: pci.iommuGroup }),
      vfioModule: modalias ? vfioModuleFor(modalias, aliases) : VFIO_MODULE,
    };
  });
  const model = detectVfioModel(sysfs);
  const cmdline = sysfs.readOptional('proc/cmdline');
  const vfioDriver = registeredDriverName(sysfs, VFIO_MODULE);
  const pciIds = findPciIds(sysfs);
  return {
    host: options.host ?? rootedHostFacts(sysfs),
    tee: detectHostTee(sysfs),
    kvm: kvmTeeParameters(sysfs),
    lockdown: readLockdown(sysfs),
    iommu: {
      groups: sysfs.readdir('sys/kernel/iommu_groups').length,
      units: sysfs.readdir('sys/class/iommu'),
      noiommuParameter: model.noiommuParameter,
      model: model.model,
    },
    ...(cmdline === undefined ? {} : { cmdline: cmdline.trim().split(/\s+/).filter(Boolean) }),
    vfio: { loaded: isModuleLoaded(sysfs, VFIO_MODULE), ...(vfioDriver ? { driver: vfioDriver } : {}) },
    variants: variantsOf(sysfs, devices),
    devices,
    ...withPciIds(pciIds),
    ...(options.pciIdsFallback === undefined
      ? {}
      : { pciIdsFallback: fallbackOf(options.pciIdsFallback, pciIds !== undefined) }),
    devicePluginDir: sysfs.kindOf(DEVICE_PLUGIN_DIR) === 'dir',
    cdi: { existing: CDI_DIRS.filter((dir) => sysfs.kindOf(dir) === 'dir' || isDirLink(sysfs, dir)) },
  };
}

function withPciIds(source: string | undefined): { pciIds?: string } {
  return source === undefined ? {} : { pciIds: source };
}

/**
 * The operands' rule (hal loadPciIds): the fallback is read only when the host has no pci.ids, but it
 * is checked at their start-up either way (an unreadable one stops them with exit 2), so both are told.
 */
function fallbackOf(file: string, hostHasOne: boolean): NonNullable<DoctorObservation['pciIdsFallback']> {
  try {
    if (hostHasOne) return { file: checkPciIdsFile(file), readable: true };
    const db = loadPciIdsFile(file);
    return { file: db.source, readable: true, nvidiaNames: db.devices.size };
  } catch (error) {
    if (!isGpuccError(error, 'ERR_GPUCC_PCI_IDS_UNREADABLE')) throw error;
    return { file, readable: false, error: error.message };
  }
}

// var/run is a link to ../run on most hosts; HostRoot.kindOf does not follow the final link.
function isDirLink(sysfs: HostRoot, dir: string): boolean {
  return sysfs.kindOf(dir) === 'symlink' && sysfs.exists(dir);
}

function variantsOf(sysfs: HostRoot, devices: readonly DoctorDevice[]): DoctorObservation['variants'] {
  const byModule = new Map<string, PciAddress[]>();
  for (const d of devices) {
    if (d.vfioModule === VFIO_MODULE) continue;
    byModule.set(d.vfioModule, [...(byModule.get(d.vfioModule) ?? []), d.address]);
  }
  return [...byModule].map(([module, addresses]) => ({
    module,
    loaded: isModuleLoaded(sysfs, module),
    registered: registeredDriverName(sysfs, module) !== undefined,
    devices: addresses,
  }));
}
