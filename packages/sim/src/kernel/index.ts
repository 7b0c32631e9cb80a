import { type AccessRecorder, Sysfs } from '@gpucc/hal';
import { KernelSimulator } from './simulator.js';

export { KernelErrno } from './errno.js';
export { KernelSimulator } from './simulator.js';

/** A hal Sysfs for a simulated node: reads see the tree, kernel-attribute writes go through the simulator. */
export function openSimulatedSysfs(root: string, options: { recorder?: AccessRecorder } = {}): Sysfs {
  return new Sysfs(root, { kernel: new KernelSimulator(root), ...options });
}
