import type { HostRoot } from '../fs/index.js';

/**
 * Who holds the GPU device nodes open, from the host's proc/ under the host root, read-only:
 * `proc/<pid>/comm` names the process and every `proc/<pid>/fd/<n>` link names an open file
 * (docs/facts/real-hosts.md#processes-holding-devices). Processes come and go while the scan runs:
 * one that vanished, or whose fds are not readable (another user's, without CAP_SYS_PTRACE), is
 * skipped and counted, never an error.
 */

/** A process holding at least one GPU-related device node. */
export interface Holder {
  pid: number;
  /** `proc/<pid>/comm`: at most 15 characters, e.g. `qemu-system-x86` for qemu-system-x86_64. */
  comm: string;
  /** Whether it is a VM monitor (QEMU, Cloud Hypervisor, Firecracker) rather than a host process. */
  vm: boolean;
  /** Host paths (absolute, as the kernel prints them) of the device nodes it holds, sorted. */
  nodes: string[];
}

export interface HolderScan {
  /** False when the host's proc/ is not there or lists no process (a container without the host's /proc, a captured tree). */
  readable: boolean;
  holders: Holder[];
  /** Processes whose fds could not be listed (permissions, or gone during the scan). */
  unreadable: number;
}

/** The device nodes that name GPUs: VFIO groups and cdevs (not the shared /dev/vfio/vfio), and the NVIDIA driver's nodes. */
export function isGpuDeviceNode(target: string): boolean {
  return /^\/dev\/(vfio\/(devices\/)?(noiommu-)?(vfio)?\d+|nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset|-caps\/.*))$/.test(
    target,
  );
}

// comm is truncated to 15 bytes by the kernel: `qemu-system-x86_64` reads `qemu-system-x86`.
const VM_COMMS = [/^qemu-system-/, /^qemu-kvm$/, /^cloud-hyperviso/, /^firecracker$/];

export function isVmProcess(comm: string): boolean {
  return VM_COMMS.some((re) => re.test(comm));
}

export function scanHolders(sysfs: HostRoot): HolderScan {
  if (sysfs.kindOf('proc') !== 'dir') return { readable: false, holders: [], unreadable: 0 };
  let pids: string[];
  try {
    pids = sysfs.readdir('proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return { readable: false, holders: [], unreadable: 0 };
  }
  // A live proc always lists processes (pid 1 at least); a tree with only proc/cmdline is a capture.
  if (pids.length === 0) return { readable: false, holders: [], unreadable: 0 };
  const holders: Holder[] = [];
  let unreadable = 0;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = sysfs.readdir(`proc/${pid}/fd`);
    } catch {
      unreadable++;
      continue;
    }
    const nodes = new Set<string>();
    for (const fd of fds) {
      let target: string | undefined;
      try {
        target = sysfs.readlink(`proc/${pid}/fd/${fd}`);
      } catch {
        continue; // closed, or not ours to read, since the listing
      }
      if (target !== undefined && isGpuDeviceNode(target)) nodes.add(target);
    }
    if (nodes.size === 0) continue;
    const comm = sysfs.readOptional(`proc/${pid}/comm`)?.trim() ?? '?';
    holders.push({ pid: Number(pid), comm, vm: isVmProcess(comm), nodes: [...nodes].sort() });
  }
  holders.sort((a, b) => a.pid - b.pid);
  return { readable: true, holders, unreadable };
}

/** The holders of any of these host paths (relative to the root, e.g. `dev/vfio/12`, or absolute). */
export function holdersOf(scan: HolderScan, nodes: readonly string[]): Holder[] {
  const wanted = new Set(nodes.map((n) => (n.startsWith('/') ? n : `/${n}`)));
  return scan.holders.filter((h) => h.nodes.some((n) => wanted.has(n)));
}
