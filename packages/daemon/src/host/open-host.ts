import path from 'node:path';
import { Sysfs } from '@gpucc/hal';
import type { Logger } from '../log/logger.js';

/** What `gpucc-sim create` writes beside the tree (packages/sim node/paths.ts NODE_FILE). */
export const SIMULATED_NODE_MARKER = '.gpucc-sim/node.json';

export interface Host {
  sysfs: Sysfs;
  simulated: boolean;
}

/**
 * Opens the host root, refusing (exit 2, ERR_GPUCC_HOST_ROOT_INVALID) one that is no host: missing, a
 * file, unreadable, or without `sys/bus/pci/devices`. A simulated node (and only under a root other than `/`, so that a stray
 * marker on a real host never sends writes to the simulator) gets the kernel simulator, loaded on
 * demand so production paths never load it. The first line then warns that nothing is real.
 */
export async function openHost(hostRoot: string, logger: Logger): Promise<Host> {
  const root = path.resolve(hostRoot);
  const sysfs = new Sysfs(root); // throws ERR_GPUCC_HOST_ROOT_INVALID for a missing root, a file, a loop
  sysfs.checkHostLayout(); // and for one without sys/bus/pci/devices: before any read or write
  if (root !== '/' && sysfs.kindOf(SIMULATED_NODE_MARKER) === 'file') {
    logger.warn(
      { event: 'host.simulated', hostRoot: root },
      `host root ${root} is a SIMULATED node: kernel writes go to the simulator, no hardware is touched`,
    );
    const { openSimulatedSysfs } = await import('@gpucc/sim');
    const simulated = openSimulatedSysfs(root);
    logger.info({ event: 'host.open', hostRoot: root, simulated: true }, 'host opened');
    return { sysfs: simulated, simulated: true };
  }
  logger.info({ event: 'host.open', hostRoot: root, simulated: false }, 'host opened');
  return { sysfs, simulated: false };
}
