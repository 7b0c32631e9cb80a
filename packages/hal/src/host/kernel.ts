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

export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
  /** `-rcN`: a release candidate of major.minor. */
  rc?: number;
}

/**
 * The upstream version at the start of a release string: `6.17.0-1007-nvidia` → 6.17.0,
 * `6.8.0-49-generic` → 6.8.0, `6.17.0-rc3` → 6.17.0 rc 3, `6.12` → 6.12.0; undefined when the release
 * does not start with one.
 */
export function parseKernelVersion(release: string): KernelVersion | undefined {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?(?=$|[-+._~])/.exec(release.trim());
  if (!match) return undefined;
  const [, major, minor, patch, rc] = match;
  return {
    major: Number(major),
    minor: Number(minor),
    patch: patch === undefined ? 0 : Number(patch),
    ...(rc === undefined ? {} : { rc: Number(rc) }),
  };
}

/** Whether `version` is `major.minor` or later; a release candidate of major.minor counts as that version. */
export function kernelAtLeast(version: KernelVersion, major: number, minor: number): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}
