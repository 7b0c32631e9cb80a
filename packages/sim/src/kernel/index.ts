import { AccessRecorder, Sysfs } from '@gpucc/hal';
import { KernelSimulator } from './simulator.js';

export { KernelErrno } from './errno.js';
export { KernelSimulator } from './simulator.js';

/**
 * A hal Sysfs for a simulated node: reads see the tree, kernel-attribute writes go through the
 * simulator, and its recorder keeps the write log (tests and benchmarks read it).
 */
export function openSimulatedSysfs(root: string, options: { recorder?: AccessRecorder } = {}): Sysfs {
  return new Sysfs(root, { kernel: new KernelSimulator(root), recorder: options.recorder ?? new AccessRecorder() });
}
