import type { Logger } from '@gpucc/daemon';
import type { Sysfs } from '@gpucc/hal';
import type { CcBackend } from './backend/backend.js';
import type { CapabilityTable } from './capability.js';

/** What every command and the reconcile work with: the host, the CC tool backend, the log. */
export interface Context {
  sysfs: Sysfs;
  backend: CcBackend;
  capability: CapabilityTable;
  logger: Logger;
  maxParallel: number;
}
