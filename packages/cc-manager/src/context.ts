import type { Logger } from '@gpucc/daemon';
import type { HostRoot } from '@gpucc/hal';
import type { CcBackend } from './backend/backend.js';
import type { CapabilityTable } from './capability.js';

/** What every command and the reconcile work with: the host, the CC tool backend, the log. */
export interface Context {
  sysfs: HostRoot;
  backend: CcBackend;
  capability: CapabilityTable;
  logger: Logger;
  maxParallel: number;
}
