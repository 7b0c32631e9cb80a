export type { AtomicWriteResult, FileKind } from './host-fs.js';
export * as hostFs from './host-fs.js';
export { acquireHostLock, type HostLock, type HostLockOptions } from './host-lock.js';
export { AccessRecorder, attributeName, type WriteRecord } from './recorder.js';
export { type KernelHook, messageOf, Sysfs, type SysfsOptions, type WriteOptions } from './sysfs.js';
