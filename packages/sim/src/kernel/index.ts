import { AccessRecorder, HostRoot } from '@gpucc/hal';
import { KernelClient } from './client.js';
import { KernelSimulator } from './simulator.js';

export { KernelClient, kernelPid, startKernel, stopKernel } from './client.js';
export { KernelErrno } from './errno.js';
export { KernelServer, serveKernel } from './server.js';
export { KernelSimulator } from './simulator.js';

export interface SimulatedHostOptions {
  recorder?: AccessRecorder;
  /**
   * `process` (the default): stores go to the node's kernel process, complete-or-not-started and
   * serialized across processes, and a store that blocks is a real blocked open(2) on a threadpool
   * thread. `in-process`: this process is the kernel (one process per node only; a hang is a promise).
   */
  kernel?: 'process' | 'in-process';
}

/**
 * A hal HostRoot for a simulated node: reads see the tree, kernel-attribute writes go to the simulated
 * kernel, and its recorder keeps the write log (tests and benchmarks read it).
 */
export function openSimulatedHost(root: string, options: SimulatedHostOptions = {}): HostRoot {
  const kernel = options.kernel === 'in-process' ? new KernelSimulator(root) : new KernelClient(root);
  return new HostRoot(root, { kernel, recorder: options.recorder ?? new AccessRecorder() });
}
