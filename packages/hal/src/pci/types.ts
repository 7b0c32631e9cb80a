import type { GpuccError } from '../errors/index.js';
import type { PciAddress } from '../types/index.js';

/** What gpucc does with a function: GPUs and NVSwitches are targets, bridges are never touched. */
export type PciKind = 'gpu' | 'nvswitch' | 'bridge' | 'other';

/** The iommufd per-device cdev of a VFIO-bound function (`<dev>/vfio-dev/vfio<N>`). */
export interface VfioCdev {
  /** Directory name, also the node name under /dev/vfio/devices: `vfio3`, or `noiommu-vfio3`. */
  name: string;
  /** N of `vfio<N>`: the device ID that the plugin and CDI use in iommufd mode. */
  index: number;
  major: number;
  minor: number;
}

export interface SriovInfo {
  totalVfs: number;
  numVfs: number;
}

/** One PCI function as sysfs shows it, as plain data. IDs are numbers: compare them numerically. */
export interface PciDevice {
  address: PciAddress;
  vendor: number;
  device: number;
  /** 24-bit class code: base class, subclass, prog-if. */
  class: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  revision?: number;
  /** -1 when the kernel reports no affinity or the attribute is absent. */
  numaNode: number;
  /** Name of the bound driver (basename of the `driver` link); undefined when unbound. */
  driver?: string;
  /** undefined when unset (`(null)`) or when the kernel has no `driver_override`. */
  driverOverride?: string;
  /** undefined without an IOMMU. */
  iommuGroup?: number;
  /** Its VFIO char device (`vfio-dev/vfio<N>/dev`): only on kernels with CONFIG_VFIO_DEVICE_CDEV. */
  vfioCdev?: VfioCdev;
  /**
   * `vfio-dev/vfio<N>` exists while the function is on a VFIO driver (kernel 6.1 on), with or without
   * a char device: present without `vfioCdev` means the kernel makes no cdev
   * (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device).
   */
  vfioDevice?: { name: string; index: number };
  /** The PF of an SR-IOV VF. */
  physfn?: PciAddress;
  /** The VFs of an SR-IOV PF, in `virtfn<K>` order. */
  virtfns: PciAddress[];
  sriov?: SriovInfo;
  /** Targets of `consumer:pci:<BDF>` device links (the companions the kernel quirks tie to `.0`). */
  consumers: PciAddress[];
  /** Enabled reset methods in kernel order; [] when none or when the attribute is absent. */
  resetMethods: string[];
  /** Whether `reset` exists, i.e. the kernel can reset this function at all. */
  hasResetAttribute: boolean;
  /** Only VGA-class functions have `boot_vga`. */
  bootVga?: boolean;
  /** The real device directory, root-relative (`sys/devices/pci0000:40/…/0000:43:00.0`). */
  sysfsPath: string;
  kind: PciKind;
  /** Descriptive attributes (numa_node, revision…) that could not be read: left unknown, reported in `warnings`. */
  unknownAttributes?: string[];
}

export interface PciTopology {
  /** Every function that could be read, sorted by address. */
  devices: PciDevice[];
  byAddress: ReadonlyMap<PciAddress, PciDevice>;
  /**
   * Every valid address on the bus, including functions that failed to read (those are in
   * `problems`), so callers can see that a card or group has a member they know nothing about.
   */
  addresses: PciAddress[];
  /** IOMMU group number → member addresses (sorted), from `/sys/kernel/iommu_groups/<N>/devices`. */
  groups: ReadonlyMap<number, PciAddress[]>;
  iommuEnabled: boolean;
  /** Functions and entries that could not be read; each was skipped, the rest of the scan went on. */
  problems: GpuccError[];
  /** Attributes that could not be read of functions that were kept (see `PciDevice.unknownAttributes`). */
  warnings: GpuccError[];
}
