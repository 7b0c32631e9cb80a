export { acquireHostLock, type HostLock, type HostLockOptions } from './host-lock.js';
export { HostRoot, type HostRootOptions, type KernelHook, messageOf, type WriteOptions } from './host-root.js';
export type { AtomicWriteResult, FileKind } from './local-fs.js';
export * as localFs from './local-fs.js';
export { AccessRecorder, attributeName, type WriteRecord } from './recorder.js';
export {
  attachedSimulator,
  attachSimulator,
  SIMULATED_NODE_MARKER,
  type SimulatedTools,
  type SimulatorAttachment,
  type SimulatorLoader,
} from './simulator.js';
export { readStateDocument, readStateFile, type StateDocument, type StateFile, writeStateFile } from './state-file.js';
