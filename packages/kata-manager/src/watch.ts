import { type DirWatches, watchDirs } from '@gpucc/daemon';
import {
  type HostRoot,
  isVfioDriver,
  PCI_DRIVERS_DIR,
  type PciEvent,
  pciEventOf,
  VFIO_DEVICES_DIR,
  VFIO_DIR,
} from '@gpucc/hal';

/**
 * The directories whose changes can change the specs: the VFIO device nodes (devtmpfs sends events
 * on a real host too), the VFIO drivers' sysfs directories and the driver list (a variant driver
 * loaded later; real sysfs sends no events, the resync covers it), and the CDI directory itself (our
 * file removed or replaced by hand). Temp files, dot files and the echo of our own writes
 * (`isOwnEcho`) are ignored.
 */
export function watchedDirs(sysfs: HostRoot, cdiDir: string): string[] {
  const drivers = sysfs.readdir(PCI_DRIVERS_DIR).filter((d) => isVfioDriver(d));
  return [VFIO_DIR, VFIO_DEVICES_DIR, PCI_DRIVERS_DIR, ...drivers.map((d) => `${PCI_DRIVERS_DIR}/${d}`), cdiDir];
}

/** What an entry of a watched directory that appeared or vanished means for the observation. */
export function changeOf(dir: string, name: string | null, cdiDir: string): PciEvent {
  // Nothing on the PCI side changed in the CDI directory: the last observation still holds.
  return name !== null && dir === cdiDir ? { type: 'unrelated' } : pciEventOf(dir, name);
}

/**
 * Watches each directory and calls `trigger` with a reason, after telling `observer` what changed
 * (so that the next reconcile reads only that). `refresh` (after every reconcile) re-arms the
 * watches (the daemon's `watchDirs`); a directory watched for the first time triggers one more full
 * look, for what changed in it before its watch existed.
 */
export function watchForChanges(
  sysfs: HostRoot,
  cdiDir: string,
  trigger: (reason: string) => void,
  isOwnEcho: (fileName: string) => boolean = () => false,
  observer?: { note(change: PciEvent): void },
): DirWatches {
  const watches = watchDirs(
    sysfs,
    () => watchedDirs(sysfs, cdiDir),
    (dir, name) => {
      if (dir === cdiDir && (name === null || name.startsWith('.') || isOwnEcho(name))) return;
      observer?.note(changeOf(dir, name, cdiDir));
      trigger(`${dir}/${name ?? ''} changed`);
    },
  );
  return {
    refresh() {
      const fresh = watches.refresh();
      if (fresh.length > 0) {
        observer?.note({ type: 'unknown' });
        trigger(`now watching ${fresh.join(', ')}`);
      }
      return fresh;
    },
    close: () => watches.close(),
  };
}
