import path from 'node:path';
import { attachSimulator, type SimulatorAttachment } from '@gpucc/hal';
import { KernelClient } from './kernel/client.js';
import { GPU_TOOLS_PATH, MODPROBE_PATH, NVIDIA_SMI_PATH } from './tools/install.js';

/**
 * The simulator as an operand sees it when it opens a simulated node (hal's SimulatorAttachment):
 * the kernel simulator for attribute writes, and the fake tools `gpucc-sim create` installed.
 */
export const simulatorAttachment: SimulatorAttachment = {
  // The node's kernel process, as for every other writer: a store that blocks is a real blocked
  // write of the operand (docs/simulator-kernel.md), not a promise in its own process.
  kernel: (root) => new KernelClient(root),
  tools: (root) => ({
    modprobe: path.join(root, MODPROBE_PATH),
    gpuAdminTools: path.join(root, GPU_TOOLS_PATH),
    nvidiaSmi: path.join(root, NVIDIA_SMI_PATH),
  }),
};

/** Attaches the simulator to this process (tests, the testbed, in-process CLIs). */
export function attachSimulatorHere(): void {
  attachSimulator(() => simulatorAttachment);
}
