import { isGpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';
import { isPciAddress, type PciAddress } from '../types/index.js';

/** What kind of device node a process holds open. */
export type HeldNodeKind = 'nvidia' | 'vfio-group' | 'vfio-device';

/** A process with a GPU's device node open (read from the host's /proc, as `fuser` does). */
export interface Holder {
  pid: number;
  /** The process name from proc/<pid>/comm ("" when it could not be read). */
  comm: string;
  /** A virtual machine monitor (QEMU, Cloud Hypervisor, Firecracker), by its name. */
  vm: boolean;
  /** The device node as the process sees it, e.g. /dev/nvidia0, /dev/vfio/12, /dev/vfio/devices/vfio0. */
  node: string;
  kind: HeldNodeKind;
  /** The PCI functions behind that node: one for an NVIDIA or VFIO cdev node, the group's members for a group. */
  addresses: PciAddress[];
}

export interface HolderScan {
  /** Whether the host's proc/ is under the root at all (a captured tree, or no hostPID, has none). */
  readable: boolean;
  holders: Holder[];
  /** Processes whose fd directory could not be read (no hostPID, no privilege): holders may be missed. */
  unreadable: number;
}

const NVIDIA_NODE = /^\/dev\/nvidia(\d+)$/;
const VFIO_GROUP_NODE = /^\/dev\/vfio\/((?:noiommu-)?\d+)$/;
const VFIO_DEVICE_NODE = /^\/dev\/vfio\/devices\/(?:noiommu-)?(vfio\d+)$/;

/**
 * Every process under the host root's proc/ with an fd on a GPU device node, and the PCI functions
 * each node stands for. Read-only; works on any host-like tree. The NVIDIA minor comes from the
 * GPU's proc/driver/nvidia/gpus/<bdf>/information "Device Minor" line (docs/facts/real-hosts.md#nvidia-device-nodes).
 * A process that exits during the scan is skipped.
 */
export function findHolders(sysfs: HostRoot): HolderScan {
  // A proc/ that lists no process (a captured tree keeps a few files of it) tells nothing either.
  const pids = (safeReaddir(sysfs, 'proc') ?? []).filter((entry) => /^\d+$/.test(entry));
  if (pids.length === 0) return { readable: false, holders: [], unreadable: 0 };
  const resolveNode = nodeResolver(sysfs);
  const holders: Holder[] = [];
  let unreadable = 0;
  for (const entry of pids) {
    const fds = safeReaddir(sysfs, `proc/${entry}/fd`);
    if (fds === undefined) {
      unreadable++;
      continue;
    }
    const seen = new Set<string>();
    for (const fd of fds) {
      const target = safe(() => sysfs.readlink(`proc/${entry}/fd/${fd}`));
      if (target === undefined || seen.has(target)) continue;
      const held = resolveNode(target);
      if (!held) continue;
      seen.add(target);
      const comm = safe(() => sysfs.readOptional(`proc/${entry}/comm`))?.trim() ?? '';
      holders.push({ pid: Number(entry), comm, vm: isVmProcess(comm), node: target, ...held });
    }
  }
  return { readable: true, holders, unreadable };
}

// comm is cut to 15 bytes by the kernel: `qemu-system-x86_64` reads `qemu-system-x86`.
const VM_COMMS = [/^qemu-system-/, /^qemu-kvm$/, /^cloud-hyperviso/, /^firecracker$/];

/** Whether a process name is a virtual machine monitor's. */
export function isVmProcess(comm: string): boolean {
  return VM_COMMS.some((re) => re.test(comm));
}

/** The holders of one PCI function. */
export function holdersOf(scan: HolderScan, address: PciAddress): Holder[] {
  return scan.holders.filter((h) => h.addresses.includes(address));
}

/**
 * The VFIO devices a VMM has open, with who holds them: vfio-pci enables a device on its first open,
 * so `enable` >= 1 on a VFIO driver tells it is held (docs/facts/real-hosts.md#an-open-vfio-pci-device-has-enable-1);
 * the host's /proc tells by whom (hostPID), else "holder unknown". /proc is read only when one is held.
 */
export function vfioDevicesInUse(
  sysfs: HostRoot,
  devices: ReadonlyArray<{ address: PciAddress; driver?: string | undefined }>,
  scan?: HolderScan,
): Map<PciAddress, string[]> {
  const held = new Map<PciAddress, string[]>();
  const enabled = devices.filter(
    (d) =>
      d.driver !== undefined &&
      /vfio/.test(d.driver) &&
      Number(safe(() => sysfs.readOptional(`sys/bus/pci/devices/${d.address}/enable`))?.trim() ?? '0') >= 1,
  );
  if (enabled.length === 0) return held;
  const holders = scan ?? findHolders(sysfs);
  for (const d of enabled) {
    const names = holdersOf(holders, d.address).map(describeHolder);
    held.set(d.address, names.length ? names : ['holder unknown']);
  }
  return held;
}

/** `nvidia-persistenced (pid 1234)`, the way an operator names a process. */
export function describeHolder(holder: Holder): string {
  return `${holder.comm || 'unknown process'} (pid ${holder.pid})`;
}

function nodeResolver(sysfs: HostRoot): (node: string) => Omit<Holder, 'pid' | 'comm' | 'vm' | 'node'> | undefined {
  let minors: Map<number, PciAddress> | undefined;
  return (node) => {
    const nvidia = NVIDIA_NODE.exec(node);
    if (nvidia) {
      minors ??= nvidiaMinors(sysfs);
      const address = minors.get(Number(nvidia[1]));
      return { kind: 'nvidia', addresses: address ? [address] : [] };
    }
    const group = VFIO_GROUP_NODE.exec(node);
    if (group) {
      const number = group[1]!.replace('noiommu-', '');
      const members = safeReaddir(sysfs, `sys/kernel/iommu_groups/${number}/devices`) ?? [];
      return { kind: 'vfio-group', addresses: members.filter(isPciAddress) };
    }
    const cdev = VFIO_DEVICE_NODE.exec(node);
    if (cdev) {
      // sys/class/vfio-dev/vfioN links to <pci device>/vfio-dev/vfioN (drivers/vfio/vfio_main.c).
      const parts = safe(() => sysfs.readlink(`sys/class/vfio-dev/${cdev[1]}`))?.split('/') ?? [];
      const address = parts[parts.lastIndexOf('vfio-dev') - 1];
      return { kind: 'vfio-device', addresses: address && isPciAddress(address) ? [address] : [] };
    }
    return undefined;
  };
}

/** NVIDIA device minor → GPU, from each GPU's procfs `information` file. */
function nvidiaMinors(sysfs: HostRoot): Map<number, PciAddress> {
  const minors = new Map<number, PciAddress>();
  for (const address of safeReaddir(sysfs, 'proc/driver/nvidia/gpus') ?? []) {
    if (!isPciAddress(address)) continue;
    const text = safe(() => sysfs.readOptional(`proc/driver/nvidia/gpus/${address}/information`));
    const minor = /^Device Minor:\s*(\d+)\s*$/m.exec(text ?? '');
    if (minor) minors.set(Number(minor[1]), address);
  }
  return minors;
}

function safeReaddir(sysfs: HostRoot, relPath: string): string[] | undefined {
  return safe(() => sysfs.readdir(relPath));
}

/** /proc changes under the scan (processes exit) and parts of it are private: those read as undefined. */
function safe<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    if (isGpuccError(error)) return undefined;
    throw error;
  }
}
