import { findHolders, GpuccError, HostRoot, localFs, parsePciAddress } from '@gpucc/hal';
import { devPath } from './effects.js';
import { Tree } from './files.js';
import { makesVfioCdevs } from './spec.js';
import { readNodeSpec, withNodeLockSync } from './state.js';

/**
 * Processes that hold a GPU, as a real host's /proc shows them: proc/<pid>/comm and an fd link to the
 * device node (docs/facts/real-hosts.md#nvidia-device-nodes). A holder of an NVIDIA node makes the
 * driver's remove wait (an unbind blocks until it is released, docs/facts/real-hosts.md#an-nvidia-unbind-waits-for-the-last-client);
 * a VM holding a VFIO group opens the device, so its `enable` reads 1
 * (docs/facts/real-hosts.md#an-open-vfio-pci-device-has-enable-1).
 */

export interface HoldOptions {
  /** The process name (default nvidia-persistenced for a GPU, qemu-system-x86_64 for a VM). */
  comm?: string;
  /** The pid to use (default: the first free one from 4000). */
  pid?: number;
}

const FIRST_PID = 4000;

/** A process with the GPU's /dev/nvidia<minor> open. Returns its pid. */
export function holdGpu(root: string, address: string, options: HoldOptions = {}): number {
  const bdf = parsePciAddress(address);
  const sysfs = new HostRoot(root);
  const info = sysfs.readOptional(`proc/driver/nvidia/gpus/${bdf}/information`);
  const minor = /^Device Minor:\s*(\d+)\s*$/m.exec(info ?? '')?.[1];
  if (minor === undefined)
    throw invalidHolder(`${bdf} is not on the nvidia driver: no process can open its device node`);
  return addProcess(root, options.pid, options.comm ?? 'nvidia-persistenced', `/dev/nvidia${minor}`);
}

/** A VM (qemu) with the device's VFIO node open: the group's (or the cdev's) node, and `enable` 1. */
export function vmHold(root: string, address: string, options: HoldOptions = {}): number {
  const bdf = parsePciAddress(address);
  const node = readNodeSpec(root);
  const device = node.devices.find((d) => d.address === bdf);
  const tree = new Tree(root, { replaceFiles: true });
  if (!device || device.iommuGroup === undefined || !tree.exists(vfioGroupNode(node.noiommu, device.iommuGroup)))
    throw invalidHolder(`${bdf} is not on a VFIO driver: no VM can open it`);
  const cdev = tree.list(`${devPath(device)}/vfio-dev`)[0];
  const nodePath =
    cdev && makesVfioCdevs(node)
      ? `/dev/vfio/devices/${node.noiommu ? 'noiommu-' : ''}${cdev}`
      : `/${vfioGroupNode(node.noiommu, device.iommuGroup)}`;
  return withNodeLockSync(root, () => {
    const pid = addProcess(root, options.pid, options.comm ?? 'qemu-system-x86_64', nodePath);
    tree.attr(`${devPath(device)}/enable`, '1', 0o644);
    return pid;
  });
}

/** Ends a holder: its proc/<pid> goes, and a VFIO device no process holds any more reads `enable` 0. */
export function releaseHolder(root: string, pid: number): void {
  const tree = new Tree(root, { replaceFiles: true });
  if (!tree.exists(`proc/${pid}/fd`)) throw invalidHolder(`no simulated process ${pid} holds a device`);
  const node = readNodeSpec(root);
  withNodeLockSync(root, () => {
    const before = findHolders(new HostRoot(root)).holders.filter((h) => h.pid === pid);
    tree.remove(`proc/${pid}`);
    const still = findHolders(new HostRoot(root)).holders;
    for (const holder of before) {
      if (holder.kind === 'nvidia') continue;
      for (const address of holder.addresses) {
        const device = node.devices.find((d) => d.address === address);
        if (device && !still.some((h) => h.addresses.includes(address)))
          tree.attr(`${devPath(device)}/enable`, '0', 0o644);
      }
    }
  });
}

function addProcess(root: string, pid: number | undefined, comm: string, deviceNode: string): number {
  const tree = new Tree(root, { replaceFiles: true });
  let chosen = pid ?? FIRST_PID;
  if (pid === undefined) while (tree.exists(`proc/${chosen}`)) chosen++;
  else if (tree.exists(`proc/${pid}/fd`)) {
    const fds = tree.list(`proc/${pid}/fd`);
    localFs.symlinkSync(deviceNode, tree.abs(`proc/${pid}/fd/${3 + fds.length}`));
    return pid;
  }
  tree.dir(`proc/${chosen}/fd`);
  tree.file(`proc/${chosen}/comm`, `${comm}\n`, 0o444);
  // As /proc/<pid>/fd/<n> reads on a host: the absolute path of the node in the host's namespace.
  localFs.symlinkSync(deviceNode, tree.abs(`proc/${chosen}/fd/3`));
  return chosen;
}

function vfioGroupNode(noiommu: boolean, group: number): string {
  return noiommu ? `dev/vfio/noiommu-${group}` : `dev/vfio/${group}`;
}

function invalidHolder(message: string): GpuccError {
  return new GpuccError('ERR_GPUCC_SIM_INVALID_HOLDER', message, {
    hint: 'gpucc-sim hold needs a GPU on nvidia, vm-hold a device on a VFIO driver, release the pid that hold printed',
  });
}
