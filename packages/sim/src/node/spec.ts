/**
 * The description of a simulated node: what `gpucc-sim create` lays out and what the kernel simulator
 * needs to know beyond the tree itself (driver match tables, removed devices, CC state). Plain data,
 * stored as `.gpucc-sim/node.json` inside the node.
 */
import type { HostTee, LockdownMode } from '@gpucc/hal';

export type { HostTee };
export const HOST_TEES: readonly HostTee[] = ['sev-snp', 'tdx', 'none'];

/** The kernel's lockdown level, or `not-built`: securityfs without a lockdown file (no lockdown LSM). */
export type SimLockdown = LockdownMode | 'not-built';
export const SIM_LOCKDOWNS: readonly SimLockdown[] = ['none', 'integrity', 'confidentiality', 'not-built'];

/** The host CPU as /proc/cpuinfo shows it. */
export interface CpuSpec {
  vendor: 'amd' | 'intel';
  /** `model name`. */
  model: string;
  /**
   * The TEE the CPU and its BIOS offer, shown as its cpuinfo flag (`sev_snp`, `tdx_host_platform`).
   * Differs from the node's `tee` (the KVM parameter) on a host whose KVM module was loaded without it.
   */
  tee: HostTee;
}

export interface DeviceSpec {
  address: string;
  vendor: number;
  device: number;
  class: number;
  /** `subsystem_vendor`/`subsystem_device`: every function has both; 0 where it has no Subsystem ID (bridges). */
  subsystemVendor: number;
  subsystemDevice: number;
  revision: number;
  numaNode: number;
  /** Path of the parent under sys/devices, e.g. `pci0000:40/0000:40:01.1`. */
  parent: string;
  /** IOMMU group; absent on a host without IOMMU. */
  iommuGroup?: number;
  /** Driver bound at creation; absent = unbound. */
  driver?: string;
  /** Enabled reset methods; empty = no `reset` attribute. */
  resetMethods: string[];
  /** Function-0 companions that get `consumer:pci:` links (kernel GPU quirks). */
  consumers?: string[];
  sriov?: { totalVfs: number; numVfs: number };
  /** For a VF: its PF. */
  physfn?: string;
  /** Name the CC tool prints (`H100-SXM`, `NVSwitch_gen3`...), when the device is CC/PPCIe-capable. */
  ccName?: string;
  bar0?: number;
  /**
   * For an Intel VMD controller: the root bus of the PCI domain its driver creates (`pci10000:00`), a
   * directory under the controller's own, which the controller's `domain` link points at.
   */
  vmdRootBus?: string;
}

export interface MatchRule {
  vendor?: number;
  device?: number;
  /** Match `class & classMask === classValue`. */
  classValue?: number;
  classMask?: number;
}

export interface DriverSpec {
  name: string;
  module: string;
  /** Static ID table. VFIO drivers have none: they bind only through driver_override (or new_id). */
  match: MatchRule[];
  vfio: boolean;
  loaded: boolean;
  /** Dynamic IDs added with new_id, as `vvvv dddd` hex pairs. */
  dynamicIds?: string[];
}

export interface CcState {
  /** CC mode active now (`on`, `off`, `devtools`, or the invalid register state). */
  cc: string;
  /** CC mode that becomes active at the next reset. */
  ccPending: string;
  ppcie: 'on' | 'off';
  ppciePending: 'on' | 'off';
}

export interface NodeSpec {
  /** Format version of node.json. */
  version: 1;
  profile: string;
  tee: HostTee;
  iommu: boolean;
  /** iommufd host (CONFIG_IOMMUFD): `/dev/iommu`, and per-device cdevs on bind unless `vfioCdev` is false. */
  iommufd: boolean;
  /**
   * CONFIG_VFIO_DEVICE_CDEV, which needs iommufd (default: true on an iommufd host). Without it (or
   * without iommufd) a bound device gets `vfio-dev/vfio<N>` with no `dev` file, no `/sys/dev/char` link and no
   * `/dev/vfio/devices/vfio<N>` (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device).
   */
  vfioCdev?: boolean;
  /** vfio no-IOMMU mode (unsafe, never for CC). */
  noiommu: boolean;
  kernelRelease: string;
  /** Absent in nodes made before it existed: an AMD CPU offering the node's TEE. */
  cpu?: CpuSpec;
  /** Absent: `none` (securityfs with lockdown off). */
  lockdown?: SimLockdown;
  /** os-release NAME and VERSION_ID (absent: Ubuntu 25.10, the reference architecture's host OS). */
  os?: { name: string; versionId: string };
  nvidiaDriverVersion?: string;
  /**
   * Which NVIDIA driver build: `datacenter` (the default; no unbind lock) or `vgpu-host`, whose
   * procfs has /proc/driver/nvidia/gpus/<bdf>/unbindLock (docs/facts/real-hosts.md#the-nvidia-unbind-lock).
   */
  nvidiaDriverKind?: NvidiaDriverKind;
  drivers: DriverSpec[];
  devices: DeviceSpec[];
}

/** Whether the node's kernel makes per-device VFIO cdevs: CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV. */
export function makesVfioCdevs(node: Pick<NodeSpec, 'iommufd' | 'vfioCdev'>): boolean {
  return node.iommufd && node.vfioCdev !== false;
}

export type NvidiaDriverKind = 'datacenter' | 'vgpu-host';
export const NVIDIA_DRIVER_KINDS: readonly NvidiaDriverKind[] = ['datacenter', 'vgpu-host'];

export const NVIDIA = 0x10de;
export const MELLANOX = 0x15b3;
export const INTEL = 0x8086;

export function hex(value: number, width: number): string {
  return `0x${value.toString(16).padStart(width, '0')}`;
}
