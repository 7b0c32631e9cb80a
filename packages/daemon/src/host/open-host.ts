import path from 'node:path';
import { attachedSimulator, GpuccError, HostRoot, SIMULATED_NODE_MARKER, type SimulatedTools } from '@gpucc/hal';
import type { Logger } from '../log/logger.js';

export interface Host {
  sysfs: HostRoot;
  simulated: boolean;
  /** A simulated node's own tools, which stand in for the host's defaults; undefined on a real host. */
  tools?: SimulatedTools;
}

/**
 * Opens the host root, refusing (exit 2, ERR_GPUCC_HOST_ROOT_INVALID) one that is no host: missing, a
 * file, unreadable, or without `sys/bus/pci/devices`. A simulated node (and only under a root other
 * than `/`, so that a stray marker on a real host never sends writes to the simulator) gets the
 * kernel simulator that the repository's launch path or a test attached (hal's attachSimulator);
 * production code never loads it. Without one (a deployed binary) it stops before any access. The
 * first line warns that nothing is real.
 */
export async function openHost(hostRoot: string, logger: Logger): Promise<Host> {
  const root = path.resolve(hostRoot);
  const sysfs = new HostRoot(root); // throws ERR_GPUCC_HOST_ROOT_INVALID for a missing root, a file, a loop
  sysfs.checkHostLayout(); // and for one without sys/bus/pci/devices: before any read or write
  if (root !== '/' && sysfs.kindOf(SIMULATED_NODE_MARKER) === 'file') {
    const load = attachedSimulator();
    if (!load) {
      throw new GpuccError('ERR_GPUCC_SIMULATOR_NOT_ATTACHED', `host root ${root} is a simulated node`, {
        hint: 'this binary drives real hosts only: run it from the gpucc repository (pnpm exec <operand> … --host-root DIR), which attaches the simulator, or point --host-root at a real host (/ or /host)',
        details: { hostRoot: root, marker: SIMULATED_NODE_MARKER },
      });
    }
    logger.warn(
      { event: 'host.simulated', hostRoot: root },
      `host root ${root} is a SIMULATED node: kernel writes go to the simulator, no hardware is touched`,
    );
    const simulator = await load();
    logger.info({ event: 'host.open', hostRoot: root, simulated: true }, 'host opened');
    return {
      sysfs: new HostRoot(root, { kernel: simulator.kernel(root) }),
      simulated: true,
      tools: simulator.tools(root),
    };
  }
  logger.info({ event: 'host.open', hostRoot: root, simulated: false }, 'host opened');
  return { sysfs, simulated: false };
}
