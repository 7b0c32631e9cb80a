import os from 'node:os';
import type { HostRoot } from '../fs/index.js';

/**
 * The running kernel's release (`uname -r`), read under the host root; the process's own kernel is
 * the same one (containers share it), so it is the fallback when the host's /proc is not mounted.
 */
export function kernelRelease(sysfs: HostRoot): string {
  const text = sysfs.readOptional('proc/sys/kernel/osrelease')?.trim();
  return text && /^[A-Za-z0-9._+-]+$/.test(text) ? text : os.release();
}
