import path from 'node:path';
import { SIMULATED_NODE_MARKER } from '@gpucc/hal';

/** Host paths of a simulated node (relative to its root), in one place. */
export const SIM_DIR = '.gpucc-sim';
/** The marker that makes a root a simulated node: hal owns it, since the operands look for it. */
export const NODE_FILE = SIMULATED_NODE_MARKER;
export const FAULTS_FILE = `${SIM_DIR}/faults.json`;
export const WRITE_LOG = `${SIM_DIR}/writes.jsonl`;
export const LOCK_DIR = `${SIM_DIR}/lock`;
export const CC_DIR = `${SIM_DIR}/cc`;
export const TOOLS_CONFIG = `${SIM_DIR}/tools.json`;
/** Every CC-tool call that reached a device a VM held (it maps BAR0 under the guest): one JSON line each. */
export const HELD_ACCESS_LOG = `${SIM_DIR}/held-access.jsonl`;

export const PCI_DEVICES = 'sys/bus/pci/devices';
export const PCI_DRIVERS = 'sys/bus/pci/drivers';
export const IOMMU_GROUPS = 'sys/kernel/iommu_groups';

export function deviceDir(parent: string, address: string): string {
  return `sys/devices/${parent}/${address}`;
}

export function ccStateFile(address: string): string {
  return `${CC_DIR}/${address}.json`;
}

/** A relative symlink target from the directory holding `linkPath` to `targetPath` (both root-relative). */
export function relativeLink(linkPath: string, targetPath: string): string {
  return path.relative(path.dirname(linkPath), targetPath);
}
