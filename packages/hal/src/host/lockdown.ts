import { GpuccError, isGpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';

/** The kernel lockdown levels, weakest first (docs/facts/real-hosts.md#kernel-lockdown). */
export const LOCKDOWN_MODES = ['none', 'integrity', 'confidentiality'] as const;
export type LockdownMode = (typeof LOCKDOWN_MODES)[number];

/**
 * What `/sys/kernel/security/lockdown` says. `not-built`: securityfs is mounted but has no lockdown
 * file (the kernel has no lockdown LSM, so nothing is locked down); `no-securityfs`: nothing is
 * mounted there (a container without the host's securityfs), so it cannot be told; `unknown`: the
 * file exists but could not be read or holds what the kernel never prints, with the error's code.
 */
export type LockdownState =
  | { state: 'active'; mode: LockdownMode }
  | { state: 'not-built' }
  | { state: 'no-securityfs' }
  | { state: 'unknown'; code: string; message: string };

export const SECURITYFS_DIR = 'sys/kernel/security';
export const LOCKDOWN_FILE = `${SECURITYFS_DIR}/lockdown`;

/**
 * `none [integrity] confidentiality`: every level the kernel offers, the active one in brackets
 * (security/lockdown/lockdown.c, lockdown_read). Anything else is malformed.
 */
export function parseLockdown(text: string): LockdownMode {
  const words = text.trim().split(/\s+/);
  const active = words.filter((w) => /^\[.*\]$/.test(w)).map((w) => w.slice(1, -1));
  const mode = active.length === 1 ? LOCKDOWN_MODES.find((m) => m === active[0]) : undefined;
  const known = words.every((w) => LOCKDOWN_MODES.some((m) => w === m || w === `[${m}]`));
  if (mode === undefined || !known) {
    throw new GpuccError(
      'ERR_GPUCC_MALFORMED_ATTRIBUTE',
      `/${LOCKDOWN_FILE} reads ${JSON.stringify(text.trim().slice(0, 80))}, not the levels with the active one in brackets`,
      {
        hint: 'read it with cat /sys/kernel/security/lockdown on the host; the kernel prints e.g. "none [integrity] confidentiality"',
        details: { path: LOCKDOWN_FILE },
      },
    );
  }
  return mode;
}

/** The host's lockdown state; never throws for what the host holds (the doctor reports it instead). */
export function readLockdown(sysfs: HostRoot): LockdownState {
  try {
    const text = sysfs.readOptional(LOCKDOWN_FILE);
    if (text !== undefined) return { state: 'active', mode: parseLockdown(text) };
    // An unmounted securityfs is an empty directory; a mounted one has the entries of other LSMs.
    return sysfs.kindOf(SECURITYFS_DIR) === 'dir' && sysfs.readdir(SECURITYFS_DIR).length > 0
      ? { state: 'not-built' }
      : { state: 'no-securityfs' };
  } catch (error) {
    if (!isGpuccError(error)) throw error;
    return { state: 'unknown', code: error.code, message: error.message };
  }
}

/**
 * The level that stops gpu-admin-tools: any lockdown denies mapping a BAR through sysfs and writing
 * config space (docs/facts/real-hosts.md#kernel-lockdown); undefined when nothing is locked down.
 */
export function lockdownBlockingBars(lockdown: LockdownState): Exclude<LockdownMode, 'none'> | undefined {
  return lockdown.state === 'active' && lockdown.mode !== 'none' ? lockdown.mode : undefined;
}
