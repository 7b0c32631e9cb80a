import { isPciAddress, isVfioDriver, type Sysfs } from '@gpucc/hal';
import type { HostChange } from './observer.js';

const PCI_DRIVERS = 'sys/bus/pci/drivers';

/**
 * The directories whose changes can change the specs: the VFIO device nodes (devtmpfs sends events
 * on a real host too), the VFIO drivers' sysfs directories and the driver list (a variant driver
 * loaded later; real sysfs sends no events, the resync covers it), and the CDI directory itself (our
 * file removed or replaced by hand). Temp files, dot files and the echo of our own writes
 * (`isOwnEcho`) are ignored.
 */
export function watchedDirs(sysfs: Sysfs, cdiDir: string): string[] {
  const drivers = sysfs.readdir(PCI_DRIVERS).filter((d) => isVfioDriver(d));
  return ['dev/vfio', 'dev/vfio/devices', PCI_DRIVERS, ...drivers.map((d) => `${PCI_DRIVERS}/${d}`), cdiDir];
}

export interface WatchSet {
  /** Re-arms the watches on the directories that exist now (some appear later: dev/vfio/devices, a driver's). */
  refresh(): void;
  close(): void;
}

/** What an entry of a watched directory that appeared or vanished means for the observation. */
export function changeOf(dir: string, name: string | null, cdiDir: string): HostChange {
  if (name === null) return { type: 'unknown' };
  if (dir === cdiDir) return { type: 'unrelated' };
  if (dir === 'dev/vfio' || dir === 'dev/vfio/devices') {
    // No VFIO node starts with a dot: a temp file of whoever makes nodes by rename (the simulator does).
    return name.startsWith('.') ? { type: 'unrelated' } : { type: 'node', path: `${dir}/${name}` };
  }
  if (dir.startsWith(`${PCI_DRIVERS}/`) && isPciAddress(name)) return { type: 'function', address: name };
  return { type: 'unknown' };
}

/**
 * Watches each directory and calls `trigger` with a reason, after telling `observer` what changed
 * (so that the next reconcile reads only that). `refresh` (after every reconcile) opens new watches
 * before closing the old ones, so a directory that was removed and created again is watched again,
 * and no event falls between the two.
 */
export function watchForChanges(
  sysfs: Sysfs,
  cdiDir: string,
  trigger: (reason: string) => void,
  isOwnEcho: (fileName: string) => boolean = () => false,
  observer?: { note(change: HostChange): void },
): WatchSet {
  let closers: Array<() => void> = [];
  let watched = new Set<string>();
  const arm = (announceNew: boolean) => {
    const next: Array<() => void> = [];
    const now = new Set<string>();
    for (const dir of watchedDirs(sysfs, cdiDir)) {
      if (!sysfs.exists(dir)) continue;
      try {
        next.push(
          sysfs.watchDir(dir, (name) => {
            if (dir === cdiDir && (name === null || name.startsWith('.') || isOwnEcho(name))) return;
            observer?.note(changeOf(dir, name, cdiDir));
            trigger(`${dir}/${name ?? ''} changed`);
          }),
        );
        now.add(dir);
      } catch {
        // a directory we may not watch: the periodic resync still covers it
      }
    }
    const old = closers;
    closers = next;
    for (const close of old) close();
    // A directory that just appeared may have changed before its watch existed: look once more.
    const fresh = [...now].filter((d) => !watched.has(d));
    watched = now;
    if (announceNew && fresh.length > 0) {
      observer?.note({ type: 'unknown' });
      trigger(`now watching ${fresh.join(', ')}`);
    }
  };
  arm(false);
  return {
    refresh: () => arm(true),
    close() {
      for (const close of closers) close();
      closers = [];
    },
  };
}
